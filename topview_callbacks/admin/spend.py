"""Credits spent, for the dashboard: per day and per account, from each task's
``cost_credit`` (what its result reported as ``costCredit``), summed per hour of the
tasks' completion by ``rollups``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from topview_callbacks import rollups

#: The days shown, today included.
DAYS = 8


@dataclass
class Spend:
    """Credits spent by the tasks that finished on each day (oldest first) and per
    account."""

    days: list[date] = field(default_factory=list)
    per_day: list[Decimal] = field(default_factory=list)
    per_account: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum(self.per_day, Decimal(0))


def first_moment(now: datetime) -> datetime:
    """The start of the first day shown: local midnight ``DAYS - 1`` days ago."""
    first = timezone.localtime(now).date() - timedelta(days=DAYS - 1)
    return timezone.make_aware(datetime.combine(first, datetime.min.time()))


def spend(now: datetime) -> Spend:
    """The credits of the tasks that finished in the last ``DAYS`` days, by their local
    day of completion, from the counts kept per hour (``rollups``; call ``rollups.fill``
    first). An hour belongs to the day it starts in (in a zone whose offset is not whole
    hours, the half hour after midnight counts on the day before)."""
    start = first_moment(now)
    first = timezone.localtime(start).date()
    report = Spend(days=[first + timedelta(days=i) for i in range(DAYS)])
    report.per_day = [Decimal(0)] * DAYS
    for hour, accounts in rollups.credits(start, now).items():
        position = (timezone.localtime(hour).date() - first).days
        for account, total in accounts.items():
            if 0 <= position < DAYS:
                report.per_day[position] += total
                report.per_account[account] = report.per_account.get(account, Decimal(0)) + total
    return report
