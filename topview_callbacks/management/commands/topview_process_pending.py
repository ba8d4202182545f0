from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.sweeping import run_due


class Command(BaseCommand):
    help = (
        "Process here every stored notice that is due: pending (PROCESSING='manual', the "
        "broker was down, its process died) or failed with its retry due."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=1000, help="At most this many notices (default 1000)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        done = run_due(limit=options["limit"])
        self.stdout.write(self.style.SUCCESS(f"Processed {done} notice(s)."))
