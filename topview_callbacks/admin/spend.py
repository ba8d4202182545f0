"""Credits spent, for the dashboard: per day and per account, from each task's
``cost_credit`` (what its result reported as ``costCredit``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import SubmittedTask

#: The days shown, today included.
DAYS = 8


@dataclass
class Spend:
    """Credits spent by the tasks submitted on each day (oldest first) and per account."""

    days: list[date] = field(default_factory=list)
    per_day: list[Decimal] = field(default_factory=list)
    per_account: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum(self.per_day, Decimal(0))


def spend(now: datetime) -> Spend:
    """One grouped query on the tasks submitted in the last ``DAYS`` days (an index on
    ``submitted_at``), by their local day of submission, from ``READ_DATABASE``."""
    first = timezone.localtime(now).date() - timedelta(days=DAYS - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    report = Spend(days=[first + timedelta(days=i) for i in range(DAYS)])
    report.per_day = [Decimal(0)] * DAYS
    rows = (
        SubmittedTask.objects.using(topview_settings.read_database)
        .filter(submitted_at__gte=start, cost_credit__isnull=False)
        .order_by()
        .annotate(day=TruncDate("submitted_at"))
        .values_list("day", "account")
        .annotate(total=Sum("cost_credit"))
    )
    for day, account, total in rows:
        position = (day - first).days
        if 0 <= position < DAYS:
            report.per_day[position] += total
        report.per_account[account] = report.per_account.get(account, Decimal(0)) + total
    return report
