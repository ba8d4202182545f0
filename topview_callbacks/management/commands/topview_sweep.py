from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.conf import topview_settings
from topview_callbacks.scheduling import queue_for
from topview_callbacks.sweeping import sweep


class Command(BaseCommand):
    help = (
        "Restart Topview notices stuck pending (the broker was down) or processing (a worker "
        "died) for longer than SWEEP_AFTER: for cron users; Celery users schedule "
        "topview_callbacks.sweep instead (Django Tasks users can enqueue "
        "topview_callbacks.tasks_framework.sweep)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="SECONDS",
            help=f"Stuck for longer than this (default: SWEEP_AFTER, now "
            f"{topview_settings.sweep_after:g}).",
        )
        parser.add_argument(
            "--limit", type=int, default=1000, help="At most this many notices (default 1000)."
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Queue them (as Celery tasks, or as Django Tasks with PROCESSING='tasks') "
            "instead of processing them in this command.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["older_than"]
        if seconds is not None and seconds <= 0:
            raise CommandError("--older-than must be a positive number of seconds.")
        restart = None
        if options["enqueue"]:
            # The queue PROCESSING names; Celery when it names none (inline, manual).
            mode = "tasks" if topview_settings.processing == "tasks" else "celery"
            try:
                restart = queue_for(mode)
            except ImportError as exc:
                needs = "Celery" if mode == "celery" else "django.tasks or django-tasks"
                raise CommandError(f"--enqueue needs {needs}: {exc}") from exc
        done = sweep(
            older_than=timedelta(seconds=seconds) if seconds is not None else None,
            limit=options["limit"],
            restart=restart,
        )
        verb = "Queued" if restart else "Restarted"
        self.stdout.write(self.style.SUCCESS(f"{verb} {done} stuck notice(s)."))
