from __future__ import annotations

import argparse
import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from topview_callbacks.conf import topview_settings
from topview_callbacks.pruning import prune

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_age(value: str) -> timedelta:
    """``"90d"``, ``"12h"``, ``"30m"``, ``"45s"``; a bare number means days."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", value)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not an age like 90d, 12h, 30m or 45s.")
    number, unit = match.groups()
    return timedelta(**{_UNITS[unit or "d"]: float(number)})


class Command(BaseCommand):
    help = (
        "Delete old Topview notices in batches: processed, duplicate and ignored ones older "
        "than --older-than, failed ones older than --failed-older-than (kept longer), then "
        "final tasks left without notices. Pending notices are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=parse_age,
            metavar="AGE",
            help="e.g. 90d, 12h (default: PRUNE_AFTER_DAYS, "
            f"now {topview_settings.prune_after_days}d).",
        )
        parser.add_argument(
            "--failed-older-than",
            type=parse_age,
            metavar="AGE",
            help="Age for failed notices (default: PRUNE_FAILED_AFTER_DAYS); never less "
            "than --older-than.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="Rows deleted per statement (default 1000).",
        )

        parser.add_argument(
            "--delete-files",
            action="store_true",
            help="Also prune old tasks that have archived media, deleting those files from "
            "ARCHIVE_STORAGE (each one logged). Without it such tasks are kept.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        result = prune(
            older_than=options["older_than"],
            failed_older_than=options["failed_older_than"],
            batch_size=options["batch_size"],
            delete_files=options["delete_files"],
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {result.notices} notice(s), {result.failed_notices} failed "
                f"notice(s), {result.tasks} task(s), {result.files} archived file(s) and "
                f"{result.rejections} rejection count(s); kept {result.kept_for_files} "
                "task(s) that have archived files."
            )
        )
