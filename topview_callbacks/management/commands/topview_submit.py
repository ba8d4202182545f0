from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from topview_callbacks.client import Submission, TopviewClient
from topview_callbacks.exceptions import TopviewConfigurationError, TopviewError


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that parses as JSON (numbers, true, lists) is taken as such."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"Parameters are key=value, not {pair!r}.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


class Command(BaseCommand):
    help = (
        "Submit a Topview task (noticeUrl added from settings) and record it as a "
        "SubmittedTask. Example: topview_submit VOICE_CLONE originVoiceFileId=abc name=Ann"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("biz_type", help="bizType, e.g. M2V_PREVIEW or VOICE_CLONE.")
        parser.add_argument("params", nargs="*", help="Topview's fields as key=value.")
        parser.add_argument("--account", help="Account name in ACCOUNTS (default: default).")
        parser.add_argument(
            "--no-notice-url", action="store_true", help="Submit without noticeUrl (poll only)."
        )
        parser.add_argument(
            "--enqueue",
            type=int,
            metavar="N",
            help="Queue N copies instead (TopviewClient.enqueue_many): sent after commit, at "
            "most MAX_UNFINISHED unfinished at once.",
        )
        parser.add_argument("--reference", default="", help="The tasks' reference.")

    def handle(self, *args: Any, **options: Any) -> None:
        params = parse_params(options["params"])
        if options["no_notice_url"]:
            params["notice_url"] = None
        if options["enqueue"] is not None:
            self._enqueue(options, params)
            return
        try:
            task = TopviewClient(options["account"]).submit(
                options["biz_type"], reference=options["reference"], **params
            )
        except TopviewConfigurationError as exc:
            raise CommandError(f"Check your settings: {exc}") from exc
        except TopviewError as exc:
            raise CommandError(f"Topview refused the task: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Submitted {task.biz_type} task {task.task_id} "
                f"(notice uuid {task.notice_uuid or 'none'})"
            )
        )

    def _enqueue(self, options: dict[str, Any], params: dict[str, Any]) -> None:
        count = options["enqueue"]
        if count < 1:
            raise CommandError("--enqueue takes a number of at least 1.")
        if options["no_notice_url"]:
            raise CommandError("--enqueue always sends noticeUrl (its marker matches callbacks).")
        item = Submission(params, reference=options["reference"])
        try:
            with transaction.atomic():
                TopviewClient(options["account"]).enqueue_many(options["biz_type"], [item] * count)
        except TopviewConfigurationError as exc:
            raise CommandError(f"Check your settings: {exc}") from exc
        except TopviewError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Queued {count} {options['biz_type']} task(s)."))
