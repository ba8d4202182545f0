from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from topview_callbacks import rollups
from topview_callbacks.conf import topview_settings
from topview_callbacks.dispatch import restart_for
from topview_callbacks.sweeping import restart_stuck


class Command(BaseCommand):
    help = (
        "The sweep, for cron: process here every Topview notice that is due (inline and "
        "manual sites: this is also how failed notices are retried), or with --enqueue queue "
        "the ones nothing has worked on for SWEEP_AFTER; then count the dashboard's closed "
        "hours. Celery users schedule "
        "topview_callbacks.sweep instead (Django Tasks users enqueue "
        "topview_callbacks.tasks_framework.sweep)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="SECONDS",
            help=f"With --enqueue: untouched for longer than this (default: SWEEP_AFTER, "
            f"now {topview_settings.sweep_after:g}).",
        )
        parser.add_argument(
            "--limit", type=int, default=1000, help="At most this many notices (default 1000)."
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Queue the stuck ones (as Celery tasks, or as Django Tasks with "
            "PROCESSING='tasks') instead of processing every due notice in this command.",
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
                restart = restart_for(mode)
            except ImportError as exc:
                needs = "Celery" if mode == "celery" else "django.tasks or django-tasks"
                raise CommandError(f"--enqueue needs {needs}: {exc}") from exc
        done = restart_stuck(
            older_than=timedelta(seconds=seconds) if seconds is not None else None,
            limit=options["limit"],
            restart=restart,
        )
        if restart:
            self.stdout.write(self.style.SUCCESS(f"Queued {done} stuck notice(s)."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Processed {done} notice(s)."))
        counted = rollups.sweep(timezone.now())
        if counted:
            self.stdout.write(f"Counted {counted} hour(s) for the dashboard.")
