from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from topview_callbacks.processing import process_pending


class Command(BaseCommand):
    help = (
        "Process stored notices that are still pending (PROCESSING='manual', or the broker "
        "was down), and optionally ones stuck in processing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, help="At most this many notices.")
        parser.add_argument(
            "--stale-after",
            type=int,
            metavar="SECONDS",
            help="Also re-run notices stuck in 'processing' for longer than this.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stale = options["stale_after"]
        done = process_pending(
            limit=options["limit"],
            stale_after=timedelta(seconds=stale) if stale is not None else None,
        )
        self.stdout.write(self.style.SUCCESS(f"Processed {done} notice(s)."))
