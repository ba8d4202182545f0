"""Counts kept per hour, so that the dashboard reads the same few hundred rows a week
whatever the volume of notices.

A period (UTC) is *settled* once it closed ``SETTLE`` ago: an hour, or within the hour
going on, a ``SLICE`` of it. A settled period is counted once from the raw rows, three
bounded ``GROUP BY``s: its notices by state (through the index on ``received_at``), the
tasks that finished in it by bizType, status and turnaround bucket, and their credits by
account (both through the index on ``completed_at``); the counts are kept in
``RollupHour``, ``NoticeHour``, ``TaskHour`` and ``CreditHour`` (``minutes`` says which
kind of period). Only the time since the last settled slice (``SETTLE`` to ``SETTLE`` +
``SLICE``) is read raw. ``fill`` counts the settled periods still missing or stale: the
sweep calls it, and so does the dashboard before it reads, so the counts are there with
no sweep scheduled. Nothing runs per notice.

Staying truthful. A task's final status never changes, so its period is final once closed.
Notices change state after they arrive: a period is counted again when the number of its
notices still due (pending, or failed with a retry scheduled: the due notices' partial
index counts them cheaply) is not what it was when it was counted, which catches retries
that succeeded or gave up and a backlog drained late; replays and "mark ignored"
``forget`` the periods they touch. What can still be stale: docs/operations.md.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import TypeVar

from django.core.cache import cache
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
#: The hour being filled is kept in slices of this length, so that at most one slice and
#: ``SETTLE`` are read raw.
SLICE = timedelta(minutes=5)
#: How long after its end an hour or a slice is counted and kept.
SETTLE = timedelta(minutes=2)
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
_Kept = TypeVar("_Kept", RollupHour, NoticeHour, TaskHour, CreditHour)
KEPT: tuple[type[RollupHour | NoticeHour | TaskHour | CreditHour], ...] = (
    RollupHour,
    NoticeHour,
    TaskHour,
    CreditHour,
)


def hour_of(moment: datetime) -> datetime:
    """The UTC hour that holds ``moment``."""
    return moment.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def slice_of(moment: datetime) -> datetime:
    """The slice (``SLICE``, in UTC) that holds ``moment``."""
    hour = hour_of(moment)
    return hour + (moment - hour) // SLICE * SLICE


def settled_until(now: datetime) -> datetime:
    """The hours before this one are settled at ``now``."""
    return hour_of(now - SETTLE)


def slice_settled_until(now: datetime) -> datetime:
    """The slices before this one are settled at ``now``."""
    return slice_of(now - SETTLE)


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
    """Count the settled hours from ``start``'s hour on, and the settled slices of the
    hour after them, that are missing or stale; returns how many periods were counted."""
    first, until, slices_until = hour_of(start), settled_until(now), slice_settled_until(now)
    stale = [(hour, HOUR) for hour in _stale(HOUR, first, until, _due_per_hour(first, until))]
    if slices_until > until:
        slices = _starts(until, slices_until, SLICE)
        stale += [(start, SLICE) for start in _stale(SLICE, until, slices_until, _due_in(slices))]
    for period_start, length in stale:
        _count(period_start, length)
    return len(stale)


def sweep(now: datetime) -> int:
    """The sweep's share: count the settled periods of the last ``SWEEP_DAYS`` days still
    missing or stale, and drop the kept hours older than ``KEEP_DAYS`` and the slices of
    hours now counted whole. Returns how many periods were counted."""
    db = _kept_db()
    old = Q(hour__lt=now - timedelta(days=KEEP_DAYS)) | Q(
        minutes=_minutes(SLICE), hour__lt=settled_until(now)
    )
    for model in KEPT:
        model.objects.using(db).filter(old).delete()
    return fill(now - timedelta(days=SWEEP_DAYS), now)


def forget(moments: Iterable[datetime]) -> None:
    """Drop the counts of the hours and slices holding ``moments`` (notices whose state an
    operator changed); the next ``fill`` counts them again."""
    periods = Q()
    for moment in moments:
        periods |= Q(hour=hour_of(moment), minutes=_minutes(HOUR))
        periods |= Q(hour=slice_of(moment), minutes=_minutes(SLICE))
    if not periods:
        return
    db = _kept_db()
    with transaction.atomic(using=db):
        for model in KEPT:
            model.objects.using(db).filter(periods).delete()


def notices(start: datetime, now: datetime) -> dict[datetime, Counter[str]]:
    """Notices received per UTC hour from ``start``'s hour to ``now``, per state (and
    ``RETRYING``): kept counts for the settled hours and slices, raw counts after them."""
    counts: dict[datetime, Counter[str]] = defaultdict(Counter)
    kept = _kept(NoticeHour, start, now).values_list("hour", "state", "count")
    for period_start, state, n in kept:
        counts[hour_of(period_start)][state] += n
    for low, high in _raw_pieces(start, now):
        counts[low.replace(minute=0)] += _notice_states(
            _read().filter(received_at__gte=low, received_at__lt=high)
        )
    return dict(counts)


def tasks(start: datetime, now: datetime) -> Counter[tuple[str, str, int]]:
    """Tasks that got their final status from ``start``'s hour to ``now``, per
    ``(bizType, status, bucket)``. The settled hours' sum is cached until the next hour
    settles (final statuses never change, so neither does it)."""
    first, until = hour_of(start), settled_until(now)
    key = f"topview_callbacks:rollup_tasks:{first:%Y%m%d%H}:{until:%Y%m%d%H}"
    settled: Counter[tuple[str, str, int]] | None = cache.get(key)
    if settled is None:
        settled = _merged(_kept(TaskHour, start, now).filter(minutes=_minutes(HOUR)))
        cache.set(key, settled, timeout=int(2 * HOUR.total_seconds()))
    counts = settled + _merged(_kept(TaskHour, start, now).filter(minutes=_minutes(SLICE)))
    raw_from = max(first, slice_settled_until(now))
    counts.update(_task_buckets(_finished(raw_from, None)))
    return counts


def _merged(kept: QuerySet[TaskHour]) -> Counter[tuple[str, str, int]]:
    """The histograms of ``kept`` summed per bizType and status."""
    merged: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for biz_type, status, buckets in kept.values_list("biz_type", "status", "buckets"):
        histogram = merged[biz_type, status]  # a week: thousands of rows, ~100 keys each
        get = histogram.get
        for index, n in buckets.items():
            histogram[index] = get(index, 0) + n
    return Counter(
        {
            (biz_type, status, int(index)): n
            for (biz_type, status), histogram in merged.items()
            for index, n in histogram.items()
        }
    )


def credits(start: datetime, now: datetime) -> dict[datetime, dict[str, Decimal]]:
    """Credits spent per UTC hour and account by the tasks that finished from ``start``'s
    hour to ``now``."""
    spent: dict[datetime, dict[str, Decimal]] = defaultdict(dict)
    kept = list(_kept(CreditHour, start, now).values_list("hour", "account", "credits"))
    for low, high in _raw_pieces(start, now):
        kept += [(low, account, total) for account, total in _credits(low, high).items()]
    for period_start, account, total in kept:
        hour = spent[hour_of(period_start)]
        hour[account] = hour.get(account, Decimal(0)) + total
    return dict(spent)


def _kept(model: type[_Kept], start: datetime, now: datetime) -> QuerySet[_Kept]:
    """The kept rows of the settled hours from ``start``'s hour, and of the settled slices
    after them (a slice of an hour that is now counted whole is not read)."""
    first, until, slices_until = hour_of(start), settled_until(now), slice_settled_until(now)
    hours = Q(minutes=_minutes(HOUR), hour__gte=first, hour__lt=until)
    slices = Q(minutes=_minutes(SLICE), hour__gte=max(first, until), hour__lt=slices_until)
    return model._default_manager.using(_kept_db()).filter(hours | slices).order_by()


def _raw_pieces(start: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """The unsettled time after the last settled slice, cut at hour boundaries."""
    low, pieces = max(hour_of(start), slice_settled_until(now)), []
    while low <= now:
        high = low.replace(minute=0) + HOUR
        pieces.append((low, high))
        low = high
    return pieces


def _stale(
    length: timedelta, first: datetime, until: datetime, due: dict[datetime, int]
) -> list[datetime]:
    """The periods of ``length`` in [first, until) not kept, or kept with another number
    of due notices than ``due`` says they have now."""
    kept = dict(
        RollupHour.objects.using(_kept_db())
        .filter(minutes=_minutes(length), hour__gte=first, hour__lt=until)
        .values_list("hour", "due")
    )
    return [
        start for start in _starts(first, until, length) if kept.get(start) != due.get(start, 0)
    ]


def _starts(first: datetime, until: datetime, length: timedelta) -> list[datetime]:
    return [first + i * length for i in range(int((until - first) / length))]


def _minutes(length: timedelta) -> int:
    return int(length / timedelta(minutes=1))


def _count(start: datetime, length: timedelta) -> None:
    """Count one settled period from the raw rows and keep it (replacing what was kept)."""
    end, minutes = start + length, _minutes(length)
    states = _notice_states(_read().filter(received_at__gte=start, received_at__lt=end))
    buckets = _task_buckets(_finished(start, end))
    spent = _credits(start, end)
    db = _kept_db()
    try:
        with transaction.atomic(using=db):
            for model in KEPT:
                model.objects.using(db).filter(hour=start, minutes=minutes).delete()
            RollupHour.objects.using(db).create(
                hour=start, minutes=minutes, due=states[NoticeState.PENDING] + states[RETRYING]
            )
            NoticeHour.objects.using(db).bulk_create(
                NoticeHour(hour=start, minutes=minutes, state=state, count=n)
                for state, n in states.items()
                if n
            )
            TaskHour.objects.using(db).bulk_create(
                TaskHour(
                    hour=start,
                    minutes=minutes,
                    biz_type=biz_type,
                    status=status,
                    count=sum(histogram.values()),
                    buckets=histogram,
                )
                for (biz_type, status), histogram in _histograms(buckets).items()
            )
            CreditHour.objects.using(db).bulk_create(
                CreditHour(hour=start, minutes=minutes, account=account, credits=total)
                for account, total in spent.items()
            )
    except IntegrityError:
        pass  # another process (the sweep, another page) counted it at the same time


def _histograms(
    buckets: Counter[tuple[str, str, int]],
) -> dict[tuple[str, str], dict[str, int]]:
    """``(bizType, status, bucket) -> n`` as one sparse histogram per bizType and status."""
    histograms: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (biz_type, status, index), n in buckets.items():
        histograms[biz_type, status][str(index)] = n
    return histograms


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
        .annotate(hour=TruncHour("received_at", tzinfo=dt_timezone.utc))
        .values_list("hour")
        .annotate(n=Count("pk"))
    )
    return {hour_of(hour): n for hour, n in rows}


def _due_in(starts: list[datetime]) -> dict[datetime, int]:
    """Due notices received in each slice starting at ``starts``: one query on their
    partial index."""
    if not starts:
        return {}
    counts = (
        _read()
        .filter(DUE, received_at__gte=starts[0], received_at__lt=starts[-1] + SLICE)
        .aggregate(
            **{
                f"s{i}": Count(
                    "pk", filter=Q(received_at__gte=start, received_at__lt=start + SLICE)
                )
                for i, start in enumerate(starts)
            }
        )
    )
    return {start: counts[f"s{i}"] for i, start in enumerate(starts)}


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
