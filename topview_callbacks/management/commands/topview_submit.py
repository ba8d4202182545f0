from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.client import TopviewClient
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

    def handle(self, *args: Any, **options: Any) -> None:
        params = parse_params(options["params"])
        if options["no_notice_url"]:
            params["notice_url"] = None
        try:
            task = TopviewClient(options["account"]).submit(options["biz_type"], **params)
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
