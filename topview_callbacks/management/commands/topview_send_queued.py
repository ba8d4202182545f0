from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.conf import topview_settings
from topview_callbacks.sending import send_queued


class Command(BaseCommand):
    help = (
        "Send queued Topview submissions (TopviewClient.enqueue) while their account has "
        "fewer than MAX_UNFINISHED unfinished tasks. Safe to run several at once. Run it "
        "from cron every minute with PROCESSING='manual', and as a safety net otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--account",
            help="Send only this account's submissions (default: every account's).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = options["account"]
        if account is not None and account not in topview_settings.accounts:
            raise CommandError(f"Unknown account {account!r}: not in TOPVIEW_CALLBACKS.")
        report = send_queued(account)
        message = (
            f"Sent {report.sent} submission(s); {report.busy} answered busy (queued again "
            f"with a backoff), {report.refused} refused, {report.uncertain} uncertain."
        )
        style = self.style.SUCCESS
        if report.refused or report.uncertain:
            style = self.style.WARNING
        self.stdout.write(style(message))
