"""The dashboard's counts kept per hour (``rollups``): the page shows what the raw rows
say, counted by the page itself or by the sweep, recounted after a replay or a retry."""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from topview_callbacks import rollups
from topview_callbacks.admin import dashboard, dashboard_stats, spend
from topview_callbacks.biz_types import SPECS
from topview_callbacks.models import (
    Notice,
    NoticeState,
    RollupHour,
    SubmittedTask,
    partitioned_notices,
)
from topview_callbacks.testing import mock_topview

# admin_client: pytest-django's, a logged-in superuser.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
URL = "/admin/topview_callbacks/notice/dashboard/"
OUTCOME_OF = {
    NoticeState.PROCESSED: "processed",
    NoticeState.FAILED: "failed",
    NoticeState.PENDING: "waiting",
    NoticeState.DUPLICATE: "duplicate",
    NoticeState.IGNORED: "duplicate",
}


def page(client: Client) -> str:
    with mock_topview():
        response = client.get(URL)
    assert response.status_code == 200
    return str(response.content.decode())


def table(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'id="{table_id}">(.*?)</table>', html, re.S)
    assert body is not None, table_id
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    return [re.findall(r"<td>(.*?)</td>", row) for row in rows if "<td>" in row]


def add_notice(n: int, state: str, received_at: datetime, **values: Any) -> Notice:
    return Notice.objects.create(
        uuid=f"r-{n}",
        biz_type="VOICE_CLONE",
        task_id=f"rt-{n}",
        status="success",
        state=state,
        received_at=received_at,
        **values,
    )


def dataset(now: datetime, seed: int = 21) -> None:
    """Notices over eight days in every state; tasks of known and unknown bizTypes that
    finished over eight days with turnarounds from 0.2 s to two days, credits on most."""
    rng = random.Random(seed)
    states = [NoticeState.PROCESSED] * 12 + [
        NoticeState.FAILED,
        NoticeState.PENDING,
        NoticeState.DUPLICATE,
        NoticeState.IGNORED,
    ]
    for n in range(700):
        state = rng.choice(states)
        retry = now + timedelta(minutes=5) if state == NoticeState.FAILED and n % 2 else None
        add_notice(
            n, state, now - timedelta(seconds=rng.uniform(0, 8 * 86400)), next_attempt_at=retry
        )
    kinds = ["M2V_EXPORT", "SCRAPER", "COMMON_TASK_TEXT2IMAGE", "SOMETHING_NEW"]
    for n in range(500):
        completed = now - timedelta(seconds=rng.uniform(0, 8 * 86400))
        took = math.exp(rng.uniform(math.log(0.2), math.log(2 * 86400)))
        SubmittedTask.objects.create(
            account=rng.choice(["default", "brand-b"]),
            biz_type=rng.choice(kinds),
            task_id=f"done-{n}",
            status="fail" if n % 7 == 0 else "success",
            submitted_at=completed - timedelta(seconds=took),
            completed_at=completed,
            cost_credit=Decimal(rng.randint(1, 40)) / 4 if n % 5 else None,
        )
    for n in range(12):
        SubmittedTask.objects.create(
            biz_type=kinds[n % 4],
            task_id=f"late-{n}",
            status="expired" if n < 9 else "running",
            submitted_at=now - timedelta(days=n),
        )


def expected_daily(now: datetime) -> dict[str, list[int]]:
    first = rollups.hour_of(now - dashboard_stats.WINDOW)
    names = list(dashboard_stats.OUTCOMES)
    daily: dict[str, list[int]] = defaultdict(lambda: [0] * len(names))
    for received_at, state in Notice.objects.values_list("received_at", "state"):
        if received_at >= first:
            day = timezone.localtime(received_at).strftime("%Y-%m-%d")
            daily[day][names.index(OUTCOME_OF[state])] += 1
    return dict(daily)


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(fraction * len(ordered)) - 1]


def test_the_page_counts_what_the_raw_rows_say_without_any_sweep(admin_client: Client) -> None:
    now = timezone.now()
    dataset(now)
    html = page(admin_client)
    assert RollupHour.objects.count() >= 7 * 24 - 1  # the settled hours, counted by the page
    daily = {row[0]: [int(n) for n in row[1:]] for row in table(html, "hourly-table")}
    assert {day: counts for day, counts in daily.items() if any(counts)} == expected_daily(now)

    since = rollups.hour_of(now - dashboard_stats.WINDOW)
    finished = SubmittedTask.objects.filter(completed_at__gte=since, status__in=("success", "fail"))
    seconds = defaultdict(list)
    coarse = [0] * (len(dashboard_stats.TURNAROUND_BOUNDS) + 1)
    for task in finished:
        took = (task.completed_at - task.submitted_at).total_seconds()
        seconds[task.biz_type if task.biz_type in SPECS else "other"].append(took)
        coarse[sum(took >= bound for bound in dashboard_stats.TURNAROUND_BOUNDS)] += 1
    assert [int(n) for _, n in table(html, "turnaround-table")] == coarse
    report = dashboard_stats.turnaround(now)
    assert {row.biz_type for row in report.per_biz_type} == set(seconds)
    for row in report.per_biz_type:
        ours = finished.filter(
            biz_type__in=[row.biz_type] if row.biz_type != "other" else ["SOMETHING_NEW"]
        )
        assert (row.succeeded, row.failed) == (
            ours.filter(status="success").count(),
            ours.filter(status="fail").count(),
        )
        assert row.median == pytest.approx(nearest_rank(seconds[row.biz_type], 0.5), rel=0.045)
        assert row.p95 == pytest.approx(nearest_rank(seconds[row.biz_type], 0.95), rel=0.045)
    expired = SubmittedTask.objects.filter(status="expired", submitted_at__gte=now - timedelta(7))
    assert sum(row.expired for row in report.per_biz_type) == expired.count() == 8

    start = spend.first_moment(now)
    per_day: Counter[str] = Counter()
    for task in SubmittedTask.objects.filter(completed_at__gte=start, cost_credit__isnull=False):
        per_day[timezone.localtime(task.completed_at).strftime("%Y-%m-%d")] += task.cost_credit
    shown = {day: Decimal(total) for day, total in table(html, "spend-table")}
    assert {day: total for day, total in shown.items() if total} == dict(per_day)

    kept = RollupHour.objects.count()
    assert page(admin_client) and RollupHour.objects.count() == kept  # nothing to count again
    assert rollups.fill(now - timedelta(days=7), now) == 0


def test_the_sweep_counts_the_closed_hours_then_nothing_more(admin_client: Client) -> None:
    now = timezone.now()
    dataset(now, seed=3)
    out = call_command_output("topview_sweep")
    assert re.search(r"Counted (\d+) hour\(s\) for the dashboard", out)
    hours = RollupHour.objects.filter(minutes=60)
    kept = hours.count()
    assert kept >= 9 * 24 - 1
    again = re.search(r"Counted (\d+)", call_command_output("topview_sweep"))
    assert again is None or int(again.group(1)) <= 1  # a slice may have closed meanwhile
    html = page(admin_client)
    assert hours.count() == kept  # the page found every hour counted
    daily = {row[0]: [int(n) for n in row[1:]] for row in table(html, "hourly-table")}
    assert {day: counts for day, counts in daily.items() if any(counts)} == expected_daily(now)


def call_command_output(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def day_counts(html: str, day: str) -> dict[str, int]:
    rows = {row[0]: [int(n) for n in row[1:]] for row in table(html, "hourly-table")}
    return dict(zip(dashboard_stats.OUTCOMES, rows[day], strict=True))


def test_a_replayed_notice_moves_in_the_counted_hours(admin_client: Client) -> None:
    received = timezone.now() - timedelta(hours=5)
    failed = add_notice(1, NoticeState.FAILED, received, last_error="ValueError: boom")
    add_notice(2, NoticeState.PROCESSED, received)
    day = timezone.localtime(received).strftime("%Y-%m-%d")
    before = day_counts(page(admin_client), day)
    assert (before["failed"], before["processed"]) == (1, 1)
    call_command_output("topview_reprocess", failed.uuid)
    failed.refresh_from_db()
    assert failed.state == NoticeState.PROCESSED
    after = day_counts(page(admin_client), day)
    assert (after["failed"], after["processed"]) == (0, 2)


def test_marking_ignored_moves_the_notice_in_the_counted_hours(admin_client: Client) -> None:
    received = timezone.now() - timedelta(hours=30)
    failed = add_notice(1, NoticeState.FAILED, received)
    day = timezone.localtime(received).strftime("%Y-%m-%d")
    assert day_counts(page(admin_client), day)["failed"] == 1
    admin_client.post(
        "/admin/topview_callbacks/notice/",
        {"action": "mark_ignored", "_selected_action": [failed.pk]},
    )
    assert Notice.objects.get(pk=failed.pk).state == NoticeState.IGNORED
    counts = day_counts(page(admin_client), day)
    assert (counts["failed"], counts["duplicate"]) == (0, 1)


def test_an_hour_is_counted_again_once_its_retries_are_over(admin_client: Client) -> None:
    received = timezone.now() - timedelta(hours=3)
    retrying = add_notice(
        1, NoticeState.FAILED, received, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    waiting = add_notice(2, NoticeState.PENDING, received)
    day = timezone.localtime(received).strftime("%Y-%m-%d")
    counts = day_counts(page(admin_client), day)
    assert (counts["failed"], counts["waiting"]) == (1, 1)
    # What the worker does: the retry succeeds, the late one is processed.
    Notice.objects.filter(pk__in=[retrying.pk, waiting.pk]).update(
        state=NoticeState.PROCESSED, next_attempt_at=None
    )
    counts = day_counts(page(admin_client), day)
    assert (counts["failed"], counts["waiting"], counts["processed"]) == (0, 0, 2)


def test_the_last_minutes_are_read_raw_and_the_hour_before_in_slices() -> None:
    now = rollups.hour_of(timezone.now()) - timedelta(hours=3) + timedelta(minutes=20)
    add_notice(1, NoticeState.PROCESSED, now - timedelta(minutes=12))
    rollups.fill(now - dashboard_stats.WINDOW, now)
    add_notice(2, NoticeState.PENDING, now - timedelta(seconds=2))  # after the count
    _, series = dashboard_stats.hourly(now)
    assert (series["processed"][-1], series["waiting"][-1]) == (1, 1)
    this_hour = RollupHour.objects.filter(hour__gte=rollups.hour_of(now), hour__lte=now)
    # 20 minutes in, 2 to settle: three slices of 5 minutes kept, the last 8 minutes raw.
    assert sorted(this_hour.values_list("minutes", flat=True)) == [5, 5, 5]
    # Once the hour is counted whole, the sweep drops its slices.
    later = now + timedelta(hours=2)
    rollups.sweep(later)
    assert not RollupHour.objects.filter(minutes=5, hour__lt=rollups.settled_until(later))
    assert RollupHour.objects.filter(minutes=60, hour=rollups.hour_of(now)).exists()


def test_hours_are_utc_and_days_follow_the_local_clock_across_a_dst_change(
    settings: Any,
) -> None:
    settings.TIME_ZONE = "Europe/Paris"  # summer time ended at 01:00 UTC, 2026-10-25
    now = datetime(2026, 10, 27, 12, 0, tzinfo=dt_timezone.utc)
    midnight = timezone.make_aware(datetime(2026, 10, 25)).astimezone(
        dt_timezone.utc
    )  # 22:00 on the 24th
    for n in range(25):  # the local day of 25 hours: one notice in each
        add_notice(n, NoticeState.PROCESSED, midnight + timedelta(hours=n, minutes=30))
    rollups.fill(now - timedelta(days=8), now)
    hours, series = dashboard_stats.hourly(now)
    # Local times repeat at the change (02:00 twice): distinct instants all the same.
    assert len({hour.astimezone(dt_timezone.utc) for hour in hours}) == len(hours) == 7 * 24 + 1
    daily = dict(dashboard._daily(hours, series))
    assert daily["2026-10-25"][0] == 25
    assert daily["2026-10-24"][0] == daily["2026-10-26"][0] == 0
    assert {hour.tzinfo for hour in RollupHour.objects.values_list("hour", flat=True)} <= {
        dt_timezone.utc
    }


@pytest.mark.postgres
def test_counting_an_hour_reads_only_that_hour_through_indexes() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    dataset(now, seed=5)
    with connection.cursor() as cursor:
        for model in (Notice, SubmittedTask):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    hour = rollups.settled_until(now) - rollups.HOUR
    with CaptureQueriesContext(connection) as captured:
        assert rollups.fill(hour, now) >= 1  # the hour, and the slices of the hour after
    plans = []
    for query in captured.captured_queries:
        if query["sql"].startswith("SELECT") and "topview_callbacks_" in query["sql"]:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute(f"EXPLAIN {query['sql']}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    found = "\n".join(plans)
    if partitioned_notices(connection):
        # Each month's partition has its own copies of the indexes, named by PostgreSQL;
        # the hour's bounds prune every other partition, the DEFAULT one included.
        expected = ("Index Scan using topview_callbacks_notice_p", "topview_task_completed")
        assert "topview_callbacks_notice_default" not in found
    else:
        expected = ("topview_notice_received", "topview_notice_due", "topview_task_completed")
    for index in expected:
        assert index in found
    assert "Seq Scan on topview_callbacks_notice" not in found
    assert "Seq Scan on topview_callbacks_submittedtask" not in found
