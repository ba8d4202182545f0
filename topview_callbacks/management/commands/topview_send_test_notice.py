from __future__ import annotations

from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.biz_types import BizType
from topview_callbacks.conf import topview_settings
from topview_callbacks.testing import notice_payload, send_notice_over_http


class Command(BaseCommand):
    help = "POST a realistic Topview notice to a notice endpoint, to try your receivers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--biz-type", default=BizType.M2V_PREVIEW, help="bizType (default M2V_PREVIEW)."
        )
        parser.add_argument("--url", help="Endpoint URL (default: NOTICE_URL).")
        parser.add_argument(
            "--status", choices=("success", "fail"), default="success", help="The task's outcome."
        )
        parser.add_argument("--task-id", help="taskId (default: a new random one).")
        parser.add_argument("--uuid", help="Notice uuid (default: a new random one).")
        parser.add_argument("--account", help="Account whose UID to send (default: default).")

    def handle(self, *args: Any, **options: Any) -> None:
        account = topview_settings.account(options["account"])
        url = options["url"] or account.notice_url
        if not url:
            raise CommandError("Give --url, or set NOTICE_URL in TOPVIEW_CALLBACKS.")
        payload = notice_payload(
            options["biz_type"],
            status=options["status"],
            task_id=options["task_id"],
            uuid=options["uuid"],
        )
        try:
            response = send_notice_over_http(url, payload, uid=account.uid)
        except requests.RequestException as exc:
            raise CommandError(f"Could not POST to {url}: {exc}") from exc
        answer = response.text[:500]
        if response.status_code != 200:
            raise CommandError(f"{url} answered HTTP {response.status_code}: {answer}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Sent {payload['bizType']} notice {payload['uuid']} (task {payload['taskId']}); "
                f"the endpoint answered {answer}"
            )
        )
