from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from topview_callbacks import partitions
from topview_callbacks.processing import functions


class Command(BaseCommand):
    help = (
        "PostgreSQL, PARTITION_NOTICES on: partition the notices table by month (an existing "
        "plain table is copied into it, locked until done: see docs/operations.md), and "
        "create the partitions of this month and the next ones. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ahead",
            type=int,
            default=partitions.MONTHS_AHEAD,
            help=f"Months created ahead of this one (default {partitions.MONTHS_AHEAD}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        conn = partitions.notice_connection()
        if not partitions.enabled(conn):
            raise CommandError(
                "Notices are partitioned on PostgreSQL only, with "
                "TOPVIEW_CALLBACKS['PARTITION_NOTICES'] = True: set it first."
            )
        if options["ahead"] < 0:
            raise CommandError("--ahead must be 0 or more.")
        now = timezone.now()
        if not partitions.is_partitioned(conn):
            started = time.monotonic()
            moved = partitions.convert(conn, now=now)
            self.stdout.write(
                f"Partitioned the notices table: {moved} notice(s) copied in "
                f"{time.monotonic() - started:.1f} s."
            )
        functions.ensure(conn)  # the inline path's function, built for the keyed statements
        created = partitions.create_ahead(conn, now=now, ahead=options["ahead"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {len(created)} partition(s): {', '.join(created) or 'none missing'}."
            )
        )
