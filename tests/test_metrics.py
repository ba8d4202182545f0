"""Metrics: the pipeline's signals fill the instruments; a real scrape shows them."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.support.settings import topview
from topview_callbacks import polling
from topview_callbacks.metrics import receivers
from topview_callbacks.models import SubmittedTask
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-token-0123456789"
METRICS_ON = {"METRICS": True, "METRICS_TOKEN": TOKEN}


@pytest.fixture(autouse=True)
def metrics_on() -> Any:
    receivers.connect()
    with topview(**METRICS_ON):
        yield
    receivers.disconnect()


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = Client().get("/topview/metrics/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_and_histograms_follow_the_pipeline(failing_receiver: Any) -> None:
    failing_receiver.fixed = True
    before = scrape()
    ok = notice_payload("VOICE_CLONE", uuid="m-1", task_id="m-task-1")
    deliver_notice(ok)
    deliver_notice(ok)  # a redelivery
    deliver_notice(notice_payload("VOICE_CLONE", uuid="m-2", task_id="m-task-1"))  # duplicate
    failing_receiver.fixed = False
    deliver_notice(notice_payload("M2V_EXPORT", uuid="m-3", status="fail"))
    deliver_notice(notice_payload("VOICE_CLONE"), uid="wrong")
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    received = "topview_notices_received_total"
    assert delta(received, biz_type="VOICE_CLONE", status="success", source="callback") == 2
    assert delta(received, biz_type="M2V_EXPORT", status="fail", source="callback") == 1
    assert delta("topview_notices_redelivered_total", account="default") == 1
    assert delta("topview_notices_rejected_total", reason="wrong_uid", status="403") == 1
    processed = "topview_notices_processed_total"
    assert delta(processed, biz_type="VOICE_CLONE", outcome="processed") == 1
    assert delta(processed, biz_type="VOICE_CLONE", outcome="duplicate") == 1
    assert delta("topview_notices_failed_total", biz_type="M2V_EXPORT") == 1
    latency = "topview_notice_processing_latency_seconds_count"
    assert delta(latency, biz_type="VOICE_CLONE") == 2
    # A task first seen in its notice has no turnaround to speak of, but it is observed.
    assert delta("topview_task_turnaround_seconds_count", biz_type="VOICE_CLONE") == 1
    # The gauges come from the database at scrape time.
    assert value(after, "topview_notices_failed_now") == 1
    assert value(after, "topview_rejections_last_hour", reason="wrong_uid") == 1
    # One request with a UID nobody configured, on a site without tokens: a stranger's, ok.
    assert value(after, "topview_health_level", check="rejected_deliveries") == 0


def test_polls_and_expiries_are_counted() -> None:
    now = timezone.now()
    SubmittedTask.objects.create(
        biz_type="VOICE_CLONE", task_id="poll-1", submitted_at=now - timedelta(minutes=7)
    )
    SubmittedTask.objects.create(
        biz_type="VOICE_CLONE", task_id="poll-2", submitted_at=now - timedelta(days=3)
    )
    before = scrape()
    with mock_topview():  # the fake knows neither task: it answers "running"
        polling.reconcile(now=now)
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    polls = sum(
        delta("topview_task_polls_total", biz_type="VOICE_CLONE", answer=answer)
        for answer in ("running", "success", "fail", "error")
    )
    assert polls == 2
    assert delta("topview_tasks_expired_total", biz_type="VOICE_CLONE") == 1


def test_the_metrics_url_needs_the_token_or_a_staff_viewer() -> None:
    assert Client().get("/topview/metrics/").status_code == 403
    bad = Client().get("/topview/metrics/", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/topview/metrics/").status_code == 403  # no view permission yet
    user.user_permissions.add(Permission.objects.get(codename="view_notice"))
    client.force_login(User.objects.get(pk=user.pk))
    response = client.get("/topview/metrics/")
    assert response.status_code == 200 and b"topview_notices_pending" in response.content


def test_the_metrics_url_is_not_there_while_metrics_are_off() -> None:
    with topview(**{**METRICS_ON, "METRICS": False}):
        response = Client().get("/topview/metrics/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


MULTIPROCESS_WORKER = """
import django, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
from topview_callbacks.metrics import instruments
instruments.notices_rejected.labels("wrong_uid", "403").inc(int(sys.argv[1]))
"""
MULTIPROCESS_SCRAPE = """
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
from prometheus_client import generate_latest, CollectorRegistry, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def test_several_processes_add_up_in_multiprocess_mode(tmp_path: Any) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for count in ("2", "3"):  # two "gunicorn workers"
        subprocess.run([sys.executable, "-c", MULTIPROCESS_WORKER, count], env=env, check=True)
    text = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRAPE], env=env, check=True, capture_output=True
    ).stdout.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert value(samples, "topview_notices_rejected_total", reason="wrong_uid", status="403") == 5
