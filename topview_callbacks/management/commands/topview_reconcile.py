from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.conf import topview_settings
from topview_callbacks.dispatch import restart_for
from topview_callbacks.polling import reconcile


class Command(BaseCommand):
    help = (
        "One pass of the polling fallback: query Topview about submitted tasks whose notice "
        "is overdue, deliver the outcomes found, and expire tasks older than TASK_MAX_AGE. "
        "The outcomes' receivers run where PROCESSING runs them (here, or on the queue). "
        "Run it from cron every few minutes if you do not use the Celery beat schedule."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit",
            type=int,
            help="Query at most this many tasks (default: 200).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        report = reconcile(limit=limit, start=restart_for(topview_settings.processing))
        message = (
            f"Polled {report.polled} task(s): {report.delivered} outcome(s) delivered, "
            f"{report.unfinished} still running, {report.errors} error(s); "
            f"{report.expired} task(s) expired."
        )
        if report.misconfigured:
            message += (
                f" {report.misconfigured} task(s) skipped: their account is not in "
                "TOPVIEW_CALLBACKS (see the log)."
            )
        style = self.style.WARNING if report.errors else self.style.SUCCESS
        if report.misconfigured:
            style = self.style.ERROR
        self.stdout.write(style(message))
