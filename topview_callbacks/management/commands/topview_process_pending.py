from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from topview_callbacks.sweeping import sweep


class Command(BaseCommand):
    help = (
        "Process every stored notice that is still pending (PROCESSING='manual', or the "
        "broker was down), and restart ones stuck in processing longer than SWEEP_AFTER."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=1000, help="At most this many notices (default 1000)."
        )
        parser.add_argument(
            "--stale-after",
            type=int,
            metavar="SECONDS",
            help="Restart notices stuck in 'processing' for longer than this "
            "(default: SWEEP_AFTER).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stale = options["stale_after"]
        done = sweep(
            pending_after=timedelta(0),
            older_than=timedelta(seconds=stale) if stale is not None else None,
            limit=options["limit"],
        )
        self.stdout.write(self.style.SUCCESS(f"Processed {done} notice(s)."))
