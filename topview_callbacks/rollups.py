"""Counts kept per hour, so that the dashboard reads the same few hundred rows a week
whatever the volume of notices.

An hour (UTC) is *settled* once it closed ``SETTLE`` ago. A settled hour is counted once
from the raw rows, three bounded ``GROUP BY``s: its notices by state (through the index on
``received_at``), the tasks that finished in it by bizType, status and turnaround bucket,
and their credits by account (both through the index on ``completed_at``); the counts are
kept in ``RollupHour``, ``NoticeHour``, ``TaskHour`` and ``CreditHour``. The hours since
the last settled one (at most ``SETTLE`` + 1 h) are read raw. ``fill`` counts the settled
hours still missing or stale: the sweep calls it, and so does the dashboard before it
reads, so the counts are there with no sweep scheduled. Nothing runs per notice.

Staying truthful. A task's final status never changes, so its hour is final once closed.
Notices change state after they arrive: an hour is counted again when the number of its
notices still due (pending, or failed with a retry scheduled: the due notices' partial
index counts them cheaply) is not what it was when the hour was counted, which catches
retries that succeeded or gave up and a backlog drained late; replays and "mark ignored"
``forget`` the hours they touch. What can still be stale is written in docs/admin.md.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, connections, router, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncHour

from topview_callbacks import biz_types
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    CreditHour,
    Notice,
    NoticeHour,
    NoticeState,
    RollupHour,
    SubmittedTask,
    TaskHour,
    TaskStatus,
)

HOUR = timedelta(hours=1)
#: How long after its end an hour is counted and kept.
SETTLE = timedelta(minutes=5)
#: The sweep counts the hours of this many days back (the dashboard shows 8 local days).
SWEEP_DAYS = 9
#: Kept hours older than this are dropped by the sweep.
KEEP_DAYS = 35
#: The key of failed notices whose retry is scheduled (they are still due).
RETRYING = "retrying"
#: Upper bounds (seconds) of the dashboard's coarse turnaround spans; the last is open.
TURNAROUND_BOUNDS = (60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600)
#: Fine turnaround buckets: bucket 0 holds under a second; from 1 s to 2^22 s (48.5 days)
#: each coarse span is cut into log-spaced buckets, at least ``STEPS`` per doubling, so
#: every fine bucket lies inside one span and ``bucket_seconds`` (its geometric middle) is
#: within 2^(1/16) - 1 = 4.4% of every turnaround in it; the last bucket holds the rest.
STEPS = 8
EDGES = (1, *TURNAROUND_BOUNDS, 2**22)
SPANS = tuple(
    (low, high, math.ceil(STEPS * math.log2(high / low))) for low, high in itertools.pairwise(EDGES)
)
LAST_BUCKET = 1 + sum(steps for _, _, steps in SPANS)
FINISHED = (TaskStatus.SUCCESS, TaskStatus.FAIL)
#: The notices an attempt may start on: what the partial index ``topview_notice_due`` holds.
DUE = Q(state=NoticeState.PENDING) | Q(state=NoticeState.FAILED, next_attempt_at__isnull=False)
KEPT: tuple[type[RollupHour | NoticeHour | TaskHour | CreditHour], ...] = (
    RollupHour,
    NoticeHour,
    TaskHour,
    CreditHour,
)


def hour_of(moment: datetime) -> datetime:
    """The UTC hour that holds ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def settled_until(now: datetime) -> datetime:
    """The hours before this one are settled at ``now``."""
    return hour_of(now - SETTLE)


def bucket(seconds: float) -> int:
    """The fine turnaround bucket of ``seconds`` (``_bucket_sql`` is the same in SQL)."""
    if seconds < 1:
        return 0
    first = 1
    for low, high, steps in SPANS:
        if seconds < high:
            return first + min(
                steps - 1, math.floor(steps * math.log(seconds / low) / math.log(high / low))
            )
        first += steps
    return LAST_BUCKET


def bucket_seconds(index: int) -> float:
    """The turnaround a bucket stands for: its geometric middle (0.5 s for bucket 0, the
    lower bound for the last, open, one)."""
    if index <= 0:
        return 0.5
    first = 1
    for low, high, steps in SPANS:
        if index < first + steps:
            ratio = (high / low) ** (1 / steps)
            return float(low * ratio ** (index - first + 0.5))
        first += steps
    return float(EDGES[-1])


def fill(start: datetime, now: datetime) -> int:
    """Count the settled hours from ``start``'s hour on that are missing or stale; returns
    how many were counted."""
    first, until = hour_of(start), settled_until(now)
    if first >= until:
        return 0
    kept = dict(
        RollupHour.objects.using(_kept_db())
        .filter(hour__gte=first, hour__lt=until)
        .values_list("hour", "due")
    )
    due = _due_per_hour(first, until)
    hours = []
    hour = first
    while hour < until:
        if kept.get(hour) != due.get(hour, 0):
            hours.append(hour)
        hour += HOUR
    for hour in hours:
        _count(hour)
    return len(hours)


def sweep(now: datetime) -> int:
    """The sweep's share: count the settled hours of the last ``SWEEP_DAYS`` days still
    missing or stale, and drop the kept hours older than ``KEEP_DAYS``. Returns how many
    hours were counted."""
    db = _kept_db()
    for model in KEPT:
        model.objects.using(db).filter(hour__lt=now - timedelta(days=KEEP_DAYS)).delete()
    return fill(now - timedelta(days=SWEEP_DAYS), now)


def forget(moments: Iterable[datetime]) -> None:
    """Drop the counts of the hours holding ``moments`` (notices whose state an operator
    changed); the next ``fill`` counts them again."""
    hours = {hour_of(moment) for moment in moments}
    if not hours:
        return
    db = _kept_db()
    with transaction.atomic(using=db):
        for model in KEPT:
            model.objects.using(db).filter(hour__in=hours).delete()


def notices(start: datetime, now: datetime) -> dict[datetime, Counter[str]]:
    """Notices received per UTC hour from ``start``'s hour to ``now``, per state (and
    ``RETRYING``): kept counts for the settled hours, raw counts after them."""
    first, until = hour_of(start), settled_until(now)
    counts: dict[datetime, Counter[str]] = defaultdict(Counter)
    for hour, state, n in (
        NoticeHour.objects.using(_kept_db())
        .filter(hour__gte=first, hour__lt=until)
        .values_list("hour", "state", "count")
    ):
        counts[hour][state] += n
    hour = max(first, until)
    while hour <= now:
        counts[hour] += _notice_states(
            _read().filter(received_at__gte=hour, received_at__lt=hour + HOUR)
        )
        hour += HOUR
    return dict(counts)


def tasks(start: datetime, now: datetime) -> Counter[tuple[str, str, int]]:
    """Tasks that got their final status from ``start``'s hour to ``now``, per
    ``(bizType, status, bucket)``."""
    first, until = hour_of(start), settled_until(now)
    kept = (
        TaskHour.objects.using(_kept_db())
        .filter(hour__gte=first, hour__lt=until)
        .values_list("biz_type", "status", "bucket")
        .annotate(n=Sum("count"))
    )
    counts: Counter[tuple[str, str, int]] = Counter()
    for biz_type, status, index, n in kept:
        counts[biz_type, status, index] += n
    counts.update(_task_buckets(_finished(max(first, until), None)))
    return counts


def credits(start: datetime, now: datetime) -> dict[datetime, dict[str, Decimal]]:
    """Credits spent per UTC hour and account by the tasks that finished from ``start``'s
    hour to ``now`` (the recent hours raw, each under its own hour)."""
    first, until = hour_of(start), settled_until(now)
    spent: dict[datetime, dict[str, Decimal]] = defaultdict(dict)
    for hour, account, total in (
        CreditHour.objects.using(_kept_db())
        .filter(hour__gte=first, hour__lt=until)
        .values_list("hour", "account", "credits")
    ):
        spent[hour][account] = total
    hour = max(first, until)
    while hour <= now:
        spent[hour].update(_credits(hour, hour + HOUR))
        hour += HOUR
    return dict(spent)


def _count(hour: datetime) -> None:
    """Count one settled hour from the raw rows and keep it (replacing what was kept)."""
    states = _notice_states(_read().filter(received_at__gte=hour, received_at__lt=hour + HOUR))
    buckets = _task_buckets(_finished(hour, hour + HOUR))
    spent = _credits(hour, hour + HOUR)
    db = _kept_db()
    try:
        with transaction.atomic(using=db):
            for model in KEPT:
                model.objects.using(db).filter(hour=hour).delete()
            RollupHour.objects.using(db).create(
                hour=hour, due=states[NoticeState.PENDING] + states[RETRYING]
            )
            NoticeHour.objects.using(db).bulk_create(
                NoticeHour(hour=hour, state=state, count=n) for state, n in states.items() if n
            )
            TaskHour.objects.using(db).bulk_create(
                TaskHour(hour=hour, biz_type=biz_type, status=status, bucket=index, count=n)
                for (biz_type, status, index), n in buckets.items()
            )
            CreditHour.objects.using(db).bulk_create(
                CreditHour(hour=hour, account=account, credits=total)
                for account, total in spent.items()
            )
    except IntegrityError:
        pass  # another process (the sweep, another page) counted it at the same time


def _notice_states(notices: QuerySet[Notice]) -> Counter[str]:
    retrying = ExpressionWrapper(
        Q(state=NoticeState.FAILED, next_attempt_at__isnull=False), output_field=BooleanField()
    )
    rows = notices.order_by().annotate(retrying=retrying).values_list("state", "retrying")
    counts: Counter[str] = Counter()
    for state, is_retrying, n in rows.annotate(n=Count("pk")):
        counts[RETRYING if is_retrying else state] += n
    return counts


def _due_per_hour(first: datetime, until: datetime) -> dict[datetime, int]:
    """Due notices per UTC hour received in [first, until), read from their partial index."""
    rows = (
        _read()
        .filter(DUE, received_at__gte=first, received_at__lt=until)
        .order_by()
        .annotate(hour=TruncHour("received_at", tzinfo=UTC))
        .values_list("hour")
        .annotate(n=Count("pk"))
    )
    return {hour_of(hour): n for hour, n in rows}


def _finished(start: datetime, end: datetime | None) -> QuerySet[SubmittedTask]:
    tasks = SubmittedTask.objects.using(topview_settings.read_database).filter(
        completed_at__gte=start
    )
    return tasks if end is None else tasks.filter(completed_at__lt=end)


def _task_buckets(finished: QuerySet[SubmittedTask]) -> Counter[tuple[str, str, int]]:
    known = When(biz_type__in=list(biz_types.SPECS), then=F("biz_type"))
    kind = Case(known, default=Value(biz_types.OTHER), output_field=CharField())
    rows = (
        finished.filter(status__in=FINISHED)
        .order_by()
        .annotate(kind=kind, bucket=RawSQL(_bucket_sql(finished.db), ()))
        .values_list("kind", "status", "bucket")
        .annotate(n=Count("pk"))
    )
    return Counter({(kind, status, int(index)): n for kind, status, index, n in rows})


def _credits(start: datetime, end: datetime) -> dict[str, Decimal]:
    rows = (
        _finished(start, end)
        .filter(cost_credit__isnull=False)
        .order_by()
        .values_list("account")
        .annotate(total=Sum("cost_credit"))
    )
    return dict(rows)


def _bucket_sql(db: str) -> str:
    """``bucket`` in SQL, on the task's turnaround (``completed_at - submitted_at``)."""
    vendor = connections[db].vendor
    if vendor == "postgresql":
        seconds, least = "EXTRACT(EPOCH FROM (completed_at - submitted_at))", "LEAST"
    elif vendor == "mysql":
        seconds = "TIMESTAMPDIFF(MICROSECOND, submitted_at, completed_at) / 1000000.0"
        least = "LEAST"
    else:  # SQLite (Django registers LN and FLOOR); julianday() is a float of days: to ms
        seconds = "ROUND((julianday(completed_at) - julianday(submitted_at)) * 86400.0, 3)"
        least = "MIN"
    branches, first = [f"WHEN {seconds} < 1 THEN 0"], 1
    for low, high, steps in SPANS:
        branches.append(
            f"WHEN {seconds} < {high} THEN {first} + {least}({steps - 1}, "
            f"FLOOR({steps} * LN({seconds} / {low}.0) / LN({high / low!r})))"
        )
        first += steps
    return f"CASE {' '.join(branches)} ELSE {LAST_BUCKET} END"


def _read() -> QuerySet[Notice]:
    return Notice.objects.using(topview_settings.read_database)


def _kept_db() -> str:
    """The kept counts are read and written where the router writes them (the primary):
    they are small, and a page that counted an hour reads it back at once."""
    return router.db_for_write(RollupHour)
