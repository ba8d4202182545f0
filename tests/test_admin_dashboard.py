"""The "Topview pipeline" dashboard: figures checked against known fixtures, access, credit."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from topview_callbacks import rollups
from topview_callbacks.admin import dashboard_stats, spend
from topview_callbacks.models import Notice, NoticeState, RejectedDelivery, SubmittedTask
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

# admin_client: pytest-django's, a logged-in superuser.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]
URL = "/admin/topview_callbacks/notice/dashboard/"
NOW = timezone.now()


def task(biz_type: str, n: int, status: str, minutes: float | None) -> SubmittedTask:
    submitted = NOW - timedelta(hours=2)
    return SubmittedTask.objects.create(
        biz_type=biz_type,
        task_id=f"{biz_type}-{n}",
        status=status,
        submitted_at=submitted,
        completed_at=submitted + timedelta(minutes=minutes) if minutes is not None else None,
    )


def notice(n: int, state: str, hours_ago: float, **values: Any) -> Notice:
    return Notice.objects.create(
        uuid=f"n-{n}",
        biz_type="VOICE_CLONE",
        task_id=f"t-{n}",
        status="success",
        state=state,
        received_at=NOW - timedelta(hours=hours_ago),
        **values,
    )


def test_turnaround_median_p95_and_success_rate_from_known_tasks() -> None:
    # M2V_EXPORT: 20 successes taking 1..20 minutes, 4 failures taking 30, 1 expired, 1 open.
    for n in range(1, 21):
        task("M2V_EXPORT", n, "success", n)
    for n in range(21, 25):
        task("M2V_EXPORT", n, "fail", 30)
    task("M2V_EXPORT", 25, "expired", None)
    task("M2V_EXPORT", 26, "running", None)
    task("VOICE_CLONE", 1, "success", 0.5)
    rollups.fill(NOW - timedelta(days=7), NOW)  # what the page (or the sweep) does first
    report = dashboard_stats.turnaround(NOW)
    export, voice = report.per_biz_type
    assert (export.total, export.succeeded, export.failed, export.expired) == (26, 20, 4, 1)
    assert export.success_rate == pytest.approx(20 / 25)
    # 24 finished: 1..20 min and 4 x 30 min. Nearest rank, from the kept histogram: within
    # 4.4% of the 12th (12 min) and of the 23rd (30 min).
    assert export.median == pytest.approx(12 * 60, rel=0.045)
    assert export.p95 == pytest.approx(30 * 60, rel=0.045)
    assert voice.median == voice.p95 == pytest.approx(30, rel=0.045)
    # <1 min: the voice task; 1-2: 1 min; 2-5: 2..4; 5-10: 5..9; 10-30: 10..20; 30-60: 4 x 30.
    assert report.buckets == [1, 1, 3, 5, 11, 4, 0, 0, 0, 0]


def test_hourly_counts_per_outcome() -> None:
    notice(1, NoticeState.PROCESSED, 1.2)
    notice(2, NoticeState.PROCESSED, 1.3)
    notice(3, NoticeState.FAILED, 1.4)
    notice(4, NoticeState.DUPLICATE, 30)
    waiting = notice(5, NoticeState.PENDING, 0.01)
    notice(6, NoticeState.PROCESSED, 24 * 8)  # outside the window
    rollups.fill(NOW - timedelta(days=7), NOW)
    hours, series = dashboard_stats.hourly(NOW)
    assert len(hours) == 7 * 24 + 1
    assert {name: sum(values) for name, values in series.items()} == {
        "processed": 2,
        "failed": 1,
        "waiting": 1,
        "duplicate": 1,
    }
    its_hour = timezone.localtime(rollups.hour_of(waiting.received_at))
    assert hours.index(its_hour) >= len(hours) - 2  # the last bar, or the one before
    assert series["waiting"][hours.index(its_hour)] == 1


def test_the_page_shows_states_failures_rejections_and_links(admin_client: Client) -> None:
    notice(1, NoticeState.FAILED, 2, last_error="Traceback...\nValueError: no such voice")
    notice(2, NoticeState.FAILED, 3, last_error="Traceback...\nValueError: no such voice")
    notice(3, NoticeState.FAILED, 30, last_error="Traceback...\nKeyError: 'x'")
    pending = notice(4, NoticeState.PENDING, 0.5)
    for _ in range(3):
        deliver_notice(notice_payload("VOICE_CLONE"), uid="misconfigured-uid")
    with mock_topview(credit=1234.5):
        response = admin_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'state-failed" href="[^"]*state__exact=failed"><div class="n">3<', html)
    assert f'href="/admin/topview_callbacks/notice/{pending.pk}/change/"' in html
    assert 'id="failed-24h"' in html and re.search(r'failed-24h".*?"n">2<', html, re.S)
    assert "<code>ValueError: no such voice</code></td><td>2</td>" in html
    assert re.search(r'reason-wrong_uid"><td>wrong_uid</td><td>403</td><td>3</td><td>1<', html)
    assert "default: <strong>1234.50</strong>" in html
    assert (
        html.count('<svg class="topview-chart"') == 3
        and "<title>Notices per hour by outcome" in html
    )
    assert "misconfigured-uid" not in html


def test_credits_spent_per_day_and_per_account(admin_client: Client) -> None:
    now = timezone.now()
    for n, (account, cost, days_ago) in enumerate(
        [("default", "10", 0), ("default", "2.5", 0), ("brand-b", "4", 1), ("default", "7", 9)]
    ):
        SubmittedTask.objects.create(
            account=account,
            biz_type="COMMON_TASK_TEXT2IMAGE",
            task_id=f"spent-{n}",
            status="success",
            cost_credit=Decimal(cost),
            submitted_at=now - timedelta(days=days_ago, minutes=3),
            completed_at=now - timedelta(days=days_ago),
        )
    rollups.fill(spend.first_moment(now), now)
    report = spend.spend(now)
    assert report.per_day[-1] == Decimal("12.5") and report.per_day[-2] == Decimal("4")
    assert report.per_account == {"default": Decimal("12.5"), "brand-b": Decimal("4")}
    assert report.total == Decimal("16.5")  # the 9-day-old task is outside the window
    with mock_topview():
        html = admin_client.get(URL).content.decode()
    assert "<title>Credits spent per day" in html
    assert "default <strong>12.50</strong>" in html


def test_a_failing_credit_call_is_a_message_not_a_500(admin_client: Client) -> None:
    with responses.RequestsMock() as api:
        api.get(re.compile(r"https://api\.topview\.test/.*"), status=502, body="bad gateway")
        response = admin_client.get(URL)
        assert response.status_code == 200
        assert "unknown (" in response.content.decode()
        admin_client.get(URL)  # the failure is cached: Topview is not asked again
        calls = len(api.calls)
    assert calls == 2  # one per account with an API key (default, brand-b), once


def test_only_staff_who_may_view_notices_see_it() -> None:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_notice"))
    client.force_login(User.objects.get(pk=user.pk))
    with mock_topview():
        assert client.get(URL).status_code == 200
    assert Client().get(URL).status_code == 302  # to the login page


def test_the_changelist_links_to_the_dashboard(admin_client: Client) -> None:
    html = admin_client.get("/admin/topview_callbacks/notice/").content.decode()
    assert f'href="{URL}"' in html and "Topview pipeline" in html
    RejectedDelivery.objects.all().delete()
