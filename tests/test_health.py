"""health.py and ``topview_health``: each probe against known fixtures, exit codes, the plugin."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone

from tests.support.settings import topview
from topview_callbacks import health
from topview_callbacks.models import Notice, NoticeState, RejectedDelivery, SubmittedTask
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

pytestmark = pytest.mark.django_db

NOW = timezone.now()
SWEEP_AFTER = 300


@pytest.fixture(autouse=True)
def settings_for_health() -> Any:
    with topview(SWEEP_AFTER=SWEEP_AFTER):
        yield


def notice(state: str, age: timedelta, **values: Any) -> Notice:
    n = Notice.objects.count()
    return Notice.objects.create(
        uuid=f"u-{n}",
        biz_type="VOICE_CLONE",
        task_id=f"t-{n}",
        status="success",
        state=state,
        received_at=NOW - age,
        **values,
    )


def run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("topview_health", *args, stdout=out)
    except SystemExit as exit:
        return int(exit.code or 0), out.getvalue()
    return 0, out.getvalue()


def by_name(findings: list[health.Finding]) -> dict[str, health.Finding]:
    return {finding.name: finding for finding in findings}


def test_an_empty_pipeline_is_healthy() -> None:
    code, out = run()
    assert code == 0
    assert out.count("OK") == 8 and "Topview pipeline: OK" in out


def test_measurements_count_what_the_fixtures_hold() -> None:
    notice(NoticeState.PENDING, timedelta(minutes=20))
    notice(NoticeState.PENDING, timedelta(minutes=1))
    # Failed two hours ago, its retry scheduled for a minute from now.
    notice(NoticeState.FAILED, timedelta(hours=2), next_attempt_at=NOW + timedelta(minutes=1))
    notice(NoticeState.FAILED, timedelta(hours=30))
    notice(NoticeState.PROCESSED, timedelta(seconds=5))
    SubmittedTask.objects.create(
        biz_type="M2V_EXPORT", task_id="late", next_poll_at=NOW - timedelta(hours=1)
    )
    SubmittedTask.objects.create(
        biz_type="M2V_EXPORT", task_id="due", next_poll_at=NOW - timedelta(minutes=5)
    )
    SubmittedTask.objects.create(
        biz_type="M2V_EXPORT",
        task_id="done",
        status="success",
        next_poll_at=NOW - timedelta(hours=3),
    )
    m = health.measure(NOW)
    assert (m.pending, m.retrying, m.failed, m.failed_24h) == (2, 1, 2, 1)
    assert m.oldest_waiting_seconds == pytest.approx(1200, abs=1)
    assert (m.overdue_tasks, m.has_open_tasks) == (1, True)  # 5 minutes late is within the grace
    assert m.last_notice_at == NOW - timedelta(seconds=5)
    found = by_name(health.evaluate(m))
    assert found["stuck_notices"].level == health.Level.WARNING  # 1200 s >= 2 x 300 s
    assert found["failed_notices"].level == health.Level.WARNING
    assert found["overdue_tasks"].level == health.Level.WARNING
    assert found["notice_silence"].level == health.Level.OK
    assert found["rejected_deliveries"].level == health.Level.OK


@pytest.mark.parametrize(
    ("age_minutes", "level"),
    [(9, health.Level.OK), (11, health.Level.WARNING), (31, health.Level.CRITICAL)],
)
def test_stuck_thresholds_follow_sweep_after(age_minutes: int, level: health.Level) -> None:
    notice(NoticeState.PENDING, timedelta(minutes=age_minutes))
    limits = {"STUCK_WARNING_FACTOR": 2, "STUCK_CRITICAL_FACTOR": 6}
    with topview(SWEEP_AFTER=SWEEP_AFTER, HEALTH=limits):
        assert by_name(health.check(NOW))["stuck_notices"].level == level


def test_silence_with_open_tasks_is_critical_after_a_day() -> None:
    notice(NoticeState.PROCESSED, timedelta(hours=25))
    SubmittedTask.objects.create(
        biz_type="M2V_EXPORT", task_id="open", next_poll_at=NOW + timedelta(hours=1)
    )
    finding = by_name(health.check(NOW))["notice_silence"]
    assert finding.level == health.Level.CRITICAL
    assert finding.value == pytest.approx(25, abs=0.01)
    assert "are Topview's callbacks reaching NOTICE_URL?" in finding.summary


def test_a_wrong_uid_with_the_right_token_makes_the_command_exit_2_naming_the_cause() -> None:
    token = "path-token-0123456789abcdef"
    with topview(SWEEP_AFTER=SWEEP_AFTER, NOTICE_TOKENS=[token]):
        path = f"/topview/notice/{token}/"
        deliver_notice(notice_payload("VOICE_CLONE"), uid="uid-of-another-account", path=path)
        code, out = run("--json")
    report = json.loads(out)
    assert code == 2 and report["status"] == "critical"
    [rejected] = [c for c in report["checks"] if c["name"] == "rejected_deliveries"]
    assert rejected["level"] == "critical" and rejected["value"] == 1
    assert "wrong_uid_known_sender: 1" in rejected["summary"]
    assert "TOPVIEW_CALLBACKS['UID']" in rejected["summary"]


def test_many_other_rejections_only_warn() -> None:
    RejectedDelivery.objects.create(minute=NOW, reason="invalid", status=400, count=12)
    RejectedDelivery.objects.create(
        minute=NOW - timedelta(hours=2), reason="wrong_uid", status=403, count=5
    )
    code, out = run()
    assert code == 1
    assert "12 requests refused in the last hour (invalid: 12)" in out


def test_the_health_check_plugin_reports_the_same_findings() -> None:
    from health_check.exceptions import ServiceUnavailable, ServiceWarning

    from topview_callbacks.contrib.health_check import TopviewPipeline

    check = TopviewPipeline()
    check.run()  # healthy: no exception
    notice(NoticeState.FAILED, timedelta(hours=1))
    with pytest.raises(ServiceWarning, match="failed_notices"):
        check.run()
    RejectedDelivery.objects.create(minute=NOW, reason="wrong_token_known_uid", status=403)
    with pytest.raises(ServiceUnavailable, match="rejected_deliveries"):
        check.run()


@pytest.mark.django_db(transaction=True)
def test_the_plugin_runs_in_django_health_checks_view(client: Any) -> None:
    from health_check.views import HealthCheckView

    from topview_callbacks.contrib.health_check import TopviewPipeline

    RejectedDelivery.objects.create(
        minute=timezone.now(), reason="wrong_uid_known_sender", status=403
    )
    view = HealthCheckView.as_view(checks=[TopviewPipeline])
    response = asyncio.run(view(RequestFactory().get("/ht/?format=json")))
    assert response.status_code == 500
    [(name, message)] = json.loads(response.content).items()
    assert "TopviewPipeline" in name and "wrong_uid_known_sender: 1" in message


def test_credit_is_not_asked_for_unless_a_threshold_is_set() -> None:
    finding = by_name(health.check())["credit"]
    assert finding.level == health.Level.OK and "not checked" in finding.summary


@pytest.mark.parametrize(
    ("remaining", "level"),
    [(500.0, health.Level.OK), (80.0, health.Level.WARNING), (5.0, health.Level.CRITICAL)],
)
def test_a_low_credit_warns_then_is_critical(remaining: float, level: health.Level) -> None:
    cache.clear()
    with (
        topview(HEALTH={"CREDIT_WARNING": 100, "CREDIT_CRITICAL": 10}),
        mock_topview(credit=remaining),
    ):
        finding = by_name(health.check())["credit"]
    cache.clear()
    assert (finding.level, finding.value) == (level, remaining)
    assert f"remaining credit is {remaining:g}, account " in finding.summary


def test_an_unreadable_credit_is_a_warning() -> None:
    cache.clear()
    with topview(HEALTH={"CREDIT_WARNING": 100}), mock_topview() as fake:
        fake.fail_next(code="5000", message="Internal server error", times=10)
        finding = by_name(health.check())["credit"]
    cache.clear()
    assert finding.level == health.Level.WARNING and "could not be read" in finding.summary
