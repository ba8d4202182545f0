"""The numbers of the pipeline dashboard, each from a query that an index bounds.

Whole-table counts are never taken: the states that grow without bound (processed,
duplicate, ignored) are counted the way the changelists count (an estimate above
``EXACT_COUNT_LIMIT`` rows on PostgreSQL); the windowed figures read one week of rows
through the ``received_at`` and ``submitted_at`` indexes. All of them read from
``READ_DATABASE`` when one is set.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncHour
from django.utils import timezone

from topview_callbacks import biz_types, health
from topview_callbacks.admin.changelist import EXACT_COUNT_LIMIT, planner_estimate
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    Notice,
    NoticeState,
    RejectedDelivery,
    SubmittedTask,
    TaskStatus,
)

WINDOW = timedelta(days=7)
#: Outcomes of the hourly chart, in stacking order, and the states each one covers.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "processed": (NoticeState.PROCESSED,),
    "failed": (NoticeState.FAILED,),
    "waiting": (NoticeState.PENDING,),
    "duplicate": (NoticeState.DUPLICATE, NoticeState.IGNORED),
}
#: Upper bounds (seconds) of the turnaround distribution's buckets; the last is open.
TURNAROUND_BOUNDS = (60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600)
#: Failed notices read to group their errors (the newest ones).
MAX_FAILURES_READ = 500


@dataclass(frozen=True)
class StateCount:
    state: str
    label: str
    count: int
    estimated: bool


@dataclass(frozen=True)
class BizTypeStats:
    """Tasks of one bizType submitted in the window: outcomes and turnaround (seconds)."""

    biz_type: str
    total: int
    succeeded: int
    failed: int
    expired: int
    median: float | None
    p95: float | None

    @property
    def success_rate(self) -> float | None:
        finished = self.succeeded + self.failed + self.expired
        return self.succeeded / finished if finished else None


@dataclass
class Turnaround:
    per_biz_type: list[BizTypeStats] = field(default_factory=list)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(TURNAROUND_BOUNDS) + 1))


def state_counts(m: health.Measurements) -> list[StateCount]:
    """Notices per processing state: the small, actionable ones exactly (from ``m``), the
    ones that grow without bound by PostgreSQL's estimate once it passes 10,000 rows."""
    exact: dict[str, int] = {
        NoticeState.PENDING: m.pending,
        NoticeState.FAILED: m.failed,
    }
    counts = []
    for state, label in NoticeState.choices:
        if state in exact:
            counts.append(StateCount(state, str(label), exact[state], False))
            continue
        queryset = Notice.objects.using(_db()).filter(state=state).order_by()
        estimate = planner_estimate(queryset)
        if estimate is not None and estimate > EXACT_COUNT_LIMIT:
            counts.append(StateCount(state, str(label), estimate, True))
        else:
            counts.append(StateCount(state, str(label), queryset.count(), False))
    return counts


def oldest_waiting() -> Notice | None:
    """The oldest pending notice (the sweep should have restarted it)."""
    return (
        Notice.objects.using(_db())
        .filter(state=NoticeState.PENDING)
        .order_by("received_at")
        .only("pk", "uuid", "biz_type", "task_id", "received_at")
        .first()
    )


def failures(since: datetime) -> tuple[int, list[tuple[str, int]]]:
    """Failed notices received since then, and their errors (last traceback line), commonest
    first, read from the newest ``MAX_FAILURES_READ``."""
    failed = Notice.objects.using(_db()).filter(state=NoticeState.FAILED, received_at__gte=since)
    errors = failed.order_by("-received_at").values_list("last_error", flat=True)
    reasons = Counter(
        Notice(last_error=text).error_summary or "?" for text in errors[:MAX_FAILURES_READ]
    )
    return failed.count(), reasons.most_common(10)


def rejections(since: datetime) -> list[dict[str, Any]]:
    """Refused deliveries since then by reason and status: how many, from how many sources
    (addresses, or in a busy minute networks and "other": ``RejectedDelivery``)."""
    rows = (
        RejectedDelivery.objects.using(_db())
        .filter(minute__gte=since)
        .order_by()
        .values("reason", "status")
        .annotate(total=Sum("count"), addresses=Count("remote_addr", distinct=True))
        .order_by("-total")
    )
    return [dict(row) for row in rows]


def expired_tasks() -> int:
    return SubmittedTask.objects.using(_db()).filter(status=TaskStatus.EXPIRED).order_by().count()


def hourly(now: datetime) -> tuple[list[datetime], dict[str, list[int]]]:
    """Notices received per hour over the window, per outcome (``OUTCOMES``), oldest first."""
    start = timezone.localtime(now - WINDOW).replace(minute=0, second=0, microsecond=0)
    hours = [start + timedelta(hours=i) for i in range(int(WINDOW / timedelta(hours=1)) + 1)]
    index = {hour: i for i, hour in enumerate(hours)}
    outcome_of = {state: name for name, states in OUTCOMES.items() for state in states}
    series = {name: [0] * len(hours) for name in OUTCOMES}
    rows = (
        Notice.objects.using(_db())
        .filter(received_at__gte=start)
        .annotate(hour=TruncHour("received_at"))
        .order_by()
        .values_list("hour", "state")
        .annotate(n=Count("pk"))
    )
    for hour, state, n in rows:
        position = index.get(timezone.localtime(hour))
        if position is not None and state in outcome_of:
            series[outcome_of[state]][position] += n
    return hours, series


def turnaround(now: datetime) -> Turnaround:
    """Per bizType: outcomes and median / 95th percentile turnaround (nearest rank) of the
    tasks submitted in the window, and the distribution of all their turnarounds. BizTypes
    this version does not know share one row, "other" (the database folds them): a row per
    free-text value would let a notice's sender grow the page without bound."""
    known = When(biz_type__in=list(biz_types.SPECS), then=F("biz_type"))
    kind = Case(known, default=Value(biz_types.OTHER), output_field=CharField())
    window = (
        SubmittedTask.objects.using(_db())
        .filter(submitted_at__gte=now - WINDOW)
        .order_by()
        .annotate(kind=kind)
    )
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    for biz_type, status, n in window.values_list("kind", "status").annotate(n=Count("pk")):
        statuses[biz_type][status] = n
    # The database subtracts: loading two time-zone-aware datetimes per row costs 10x more.
    took = ExpressionWrapper(F("completed_at") - F("submitted_at"), output_field=DurationField())
    finished = window.filter(
        status__in=(TaskStatus.SUCCESS, TaskStatus.FAIL), completed_at__isnull=False
    )
    seconds: dict[str, list[float]] = defaultdict(list)
    report = Turnaround()
    for biz_type, duration in finished.annotate(took=took).values_list("kind", "took"):
        value = max(0.0, duration.total_seconds())
        seconds[biz_type].append(value)
        report.buckets[_bucket(value)] += 1
    for biz_type in sorted(statuses):
        counts, values = statuses[biz_type], sorted(seconds[biz_type])
        report.per_biz_type.append(
            BizTypeStats(
                biz_type=biz_type,
                total=sum(counts.values()),
                succeeded=counts[TaskStatus.SUCCESS],
                failed=counts[TaskStatus.FAIL],
                expired=counts[TaskStatus.EXPIRED],
                median=statistics.median(values) if values else None,
                p95=values[math.ceil(0.95 * len(values)) - 1] if values else None,
            )
        )
    return report


def _db() -> str | None:
    """``READ_DATABASE``: None reads where the router says."""
    return topview_settings.read_database


def _bucket(value: float) -> int:
    for i, bound in enumerate(TURNAROUND_BOUNDS):
        if value < bound:
            return i
    return len(TURNAROUND_BOUNDS)
