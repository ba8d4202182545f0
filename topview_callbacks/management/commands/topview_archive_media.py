from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks import archiving
from topview_callbacks.models import ArchivedMedia, MediaState, SubmittedTask


class Command(BaseCommand):
    help = (
        "Download the due output media of successful Topview tasks into ARCHIVE_STORAGE: "
        "new files, retries whose time has come, and files a dead worker left. For cron "
        "users (PROCESSING 'inline' or 'manual'); Celery does this on its own."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--task",
            metavar="ID",
            help="Only this Topview task id (its rows are created if it has none yet).",
        )
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="First make failed, expired and refused files pending again.",
        )
        parser.add_argument(
            "--limit", type=int, default=100, help="At most this many files (default 100)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        task_pks = None
        rows = ArchivedMedia.objects.all()
        if options["task"]:
            tasks = list(SubmittedTask.objects.filter(task_id=options["task"]))
            if not tasks:
                raise CommandError(f"No submitted task has the id {options['task']!r}.")
            task_pks = [task.pk for task in tasks]
            for task in tasks:
                archiving.create_rows(task)
            rows = rows.filter(task_id__in=task_pks)
        if options["retry_failed"]:
            retried = archiving.retry_given_up(rows)
            self.stdout.write(f"{retried} failed, expired or refused file(s) made pending.")
        started = archiving.start_due(limit=options["limit"], task_pks=task_pks)
        counts = {state: rows.filter(state=state).count() for state in MediaState.values}
        summary = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
        self.stdout.write(
            self.style.SUCCESS(f"Worked on {started} file(s). Now: {summary or 'no files'}.")
        )
