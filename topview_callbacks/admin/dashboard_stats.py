"""The numbers of the pipeline dashboard, each from a query that an index bounds.

Whole-table counts are never taken: the states that grow without bound (processed,
duplicate, ignored) are counted the way the changelists count (an estimate above
``EXACT_COUNT_LIMIT`` rows on PostgreSQL); the week's charts read the counts kept per
hour (``rollups``: a few hundred rows whatever the volume), the failures of the last day
the partial index of unsettled notices. The raw rows are read from ``READ_DATABASE`` when
one is set.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    Sum,
    Value,
    When,
)
from django.utils import timezone

from topview_callbacks import biz_types, health, rollups
from topview_callbacks.admin.changelist import EXACT_COUNT_LIMIT, planner_estimate
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    POLLABLE_TASK_STATUSES,
    Notice,
    NoticeState,
    RejectedDelivery,
    SubmittedTask,
    TaskStatus,
)
from topview_callbacks.models.notices import error_summary

WINDOW = timedelta(days=7)
#: Outcomes of the hourly chart, in stacking order, and the states each one covers.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "processed": (NoticeState.PROCESSED,),
    "failed": (NoticeState.FAILED,),
    "waiting": (NoticeState.PENDING,),
    "duplicate": (NoticeState.DUPLICATE, NoticeState.IGNORED),
}
#: Upper bounds (seconds) of the turnaround distribution's buckets; the last is open.
TURNAROUND_BOUNDS = rollups.TURNAROUND_BOUNDS
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
    """Tasks of one bizType that finished in the window, or were submitted in it and are
    open or expired: outcomes and turnaround (seconds)."""

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
    """Notices per processing state: pending exactly and failed as ``health.measure`` counts
    it (from ``m``), the ones that grow without bound by PostgreSQL's estimate once it
    passes 10,000 rows."""
    measured: dict[str, tuple[int, bool]] = {
        NoticeState.PENDING: (m.pending, False),
        NoticeState.FAILED: (m.failed, m.failed_estimated),
    }
    counts = []
    for state, label in NoticeState.choices:
        if state in measured:
            counts.append(StateCount(state, str(label), *measured[state]))
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
    reasons = Counter(error_summary(text) or "?" for text in errors[:MAX_FAILURES_READ])
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
    """Notices received per UTC hour over the window, per outcome (``OUTCOMES``), oldest
    first, from the counts kept per hour (``rollups``; call ``rollups.fill`` first). The
    hours are returned in the current time zone, for their labels."""
    first = rollups.hour_of(now - WINDOW)
    hours = [first + i * rollups.HOUR for i in range(int(WINDOW / rollups.HOUR) + 1)]
    outcome_of = {state: name for name, states in OUTCOMES.items() for state in states}
    outcome_of[rollups.RETRYING] = "failed"
    series = {name: [0] * len(hours) for name in OUTCOMES}
    counts = rollups.notices(first, now)
    for i, hour in enumerate(hours):
        for state, n in counts.get(hour, {}).items():
            if state in outcome_of:
                series[outcome_of[state]][i] += n
    return [timezone.localtime(hour) for hour in hours], series


def turnaround(now: datetime) -> Turnaround:
    """Per bizType: the tasks that got their outcome in the window (from the counts kept per
    hour), the median / 95th percentile of their turnaround (nearest rank, each within
    4.4% of the exact one: ``rollups.bucket_seconds``), the tasks submitted in the window
    that are still open or expired, and the distribution of all the turnarounds. BizTypes
    this version does not know share one row, "other": a row per free-text value would let
    a notice's sender grow the page without bound."""
    report = Turnaround()
    finished: dict[str, Counter[str]] = defaultdict(Counter)
    buckets: dict[str, Counter[int]] = defaultdict(Counter)
    for (biz_type, status, index), n in rollups.tasks(now - WINDOW, now).items():
        finished[biz_type][status] += n
        buckets[biz_type][index] += n
        report.buckets[_bucket(rollups.bucket_seconds(index))] += n
    unfinished = _unfinished_per_biz_type(now - WINDOW)
    for biz_type in sorted(set(finished) | set(unfinished)):
        counts = finished[biz_type] + unfinished[biz_type]
        report.per_biz_type.append(
            BizTypeStats(
                biz_type=biz_type,
                total=counts.total(),
                succeeded=counts[TaskStatus.SUCCESS],
                failed=counts[TaskStatus.FAIL],
                expired=counts[TaskStatus.EXPIRED],
                median=_rank(buckets[biz_type], 0.5),
                p95=_rank(buckets[biz_type], 0.95),
            )
        )
    return report


def _unfinished_per_biz_type(since: datetime) -> dict[str, Counter[str]]:
    """Tasks submitted since then that are still open or expired, per bizType and status:
    live counts from the polling index (it holds only such tasks)."""
    known = When(biz_type__in=list(biz_types.SPECS), then=F("biz_type"))
    kind = Case(known, default=Value(biz_types.OTHER), output_field=CharField())
    rows = (
        SubmittedTask.objects.using(_db())
        .filter(status__in=POLLABLE_TASK_STATUSES, submitted_at__gte=since)
        .order_by()
        .annotate(kind=kind)
        .values_list("kind", "status")
        .annotate(n=Count("*"))  # COUNT(*), not of id: read from the index alone
    )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for biz_type, status, n in rows:
        counts[biz_type][status] += n
    return counts


def _rank(histogram: Counter[int], fraction: float) -> float | None:
    """The turnaround at nearest rank ``fraction`` of a histogram of fine buckets."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(fraction * total), 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return rollups.bucket_seconds(index)
    return None  # pragma: no cover - the ranks add up to total


def _db() -> str | None:
    """``READ_DATABASE``: None reads where the router says."""
    return topview_settings.read_database


def _bucket(value: float) -> int:
    for i, bound in enumerate(TURNAROUND_BOUNDS):
        if value < bound:
            return i
    return len(TURNAROUND_BOUNDS)
