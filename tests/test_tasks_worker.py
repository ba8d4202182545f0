"""Real django-tasks-db workers (``manage.py db_worker``) processing notices on PostgreSQL.

PROCESSING="tasks" with django-tasks-db's DatabaseBackend ("database" in tests/settings.py):
gunicorn stores and enqueues, ``db_worker`` processes start as subprocesses
(tests/support/processes.py); the queue is named after the pytest process, so runs
sharing the machine don't take each other's tasks.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.processes import (
    TASKS_MODE,
    Service,
    gunicorn,
    kill_mid_notice,
    post_notice,
    states,
    tasks_worker,
    wait_for,
)
from tests.support.recording import calls, fired, key, records
from tests.support.sending import killed_mid_send

pytest.importorskip("django_tasks_db")
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.usefixtures("redis_records")]


def tasks_mode(settings: Any, **values: Any) -> None:
    """This (pytest) process enqueues to the workers' backend and queue too."""
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, **TASKS_MODE, **values}


@pytest.fixture
def new_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """This (pytest) process has asked for no drain yet."""
    from topview_callbacks import jobs, tasks_framework

    monkeypatch.setattr(tasks_framework, "_drain_window", jobs.DrainWindow())


def test_workers_process_every_notice_delivered_over_http_once(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import tasks_framework
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import notice_payload

    # Two workers take tasks from one queue (SELECT ... FOR UPDATE SKIP LOCKED); their
    # drains hold the notices they attempt by row locks, and skip the ones held.
    running.extend([tasks_worker(db_name) for _ in range(2)])
    web, port = gunicorn(db_name, workers=2, overrides=TASKS_MODE)
    running.append(web)
    uid = settings.TOPVIEW_CALLBACKS["UID"]
    payloads = [notice_payload(biz) for biz in ("M2V_PREVIEW", "VOICE_CLONE", "SCRAPER") * 10]
    for payload in payloads + payloads[:6]:  # six delivered twice
        status, body, _seconds = post_notice(port, payload, uid)
        assert status == 200 and body["result"]["result"] == "success"
    uuids = [p["uuid"] for p in payloads]
    wait_for(lambda: set(states(*uuids).values()) == {"processed"}, 60, "processing")
    # A repeated task for a processed notice does nothing.
    tasks_mode(settings)
    tasks_framework.enqueue_notice(Notice.objects.get(uuid=uuids[0]).pk)
    time.sleep(1.0)
    assert fired() == dict.fromkeys(uuids, 1)
    assert set(Notice.objects.values_list("attempts", flat=True)) == {1}
    both = running[0].output() + running[1].output()
    assert both.count(f"Topview notice {uuids[0]!r}: processed") == 1  # logged once
    assert all(f"Topview notice {uuid!r}: processed" in both for uuid in uuids)


def test_a_raising_receiver_is_retried_with_backoff_then_failed(
    db_name: str, running: list[Service], settings: Any, new_window: None
) -> None:
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    # The first attempt in a drain, the retries alone, each a task due after its backoff.
    overrides = {"MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 1.0}
    worker = tasks_worker(db_name, overrides=overrides)
    running.append(worker)
    tasks_mode(settings, **overrides)
    payload = notice_payload("M2V_EXPORT")
    records().sadd(key("fail"), payload["taskId"])
    assert deliver_notice(payload).status_code == 200

    def gave_up() -> bool:
        notice = Notice.objects.get(uuid=payload["uuid"])
        return notice.state == "failed" and notice.attempts == 3 and "giving up" in worker.output()

    wait_for(gave_up, 30, "three failed attempts")
    assert "told to fail" in Notice.objects.get(uuid=payload["uuid"]).last_error
    times = [float(t) for t in records().lrange(key(f"times:{payload['uuid']}"), 0, -1)]
    assert len(times) == 3
    # Backoff 1 s then 2 s, each with "equal jitter" (50-100% of it), as run_after.
    assert 0.5 <= times[1] - times[0] < 5
    assert 1.0 <= times[2] - times[1] < 6
    time.sleep(1.0)
    assert calls() == {payload["uuid"]: 3} and fired() == {}  # no 4th attempt


def test_a_worker_killed_mid_notice_loses_nothing_and_fires_once(
    db_name: str, running: list[Service], settings: Any, new_window: None
) -> None:
    from django_tasks_db.models import DBTaskResult

    from topview_callbacks import tasks_framework
    from topview_callbacks.models import Notice

    first = tasks_worker(db_name)
    running.append(first)
    tasks_mode(settings)
    payload = kill_mid_notice(first)
    # django-tasks-db never hands a task of a dead worker to another: it stays RUNNING.
    assert list(DBTaskResult.objects.values_list("task_path", "status")) == [
        ("topview_callbacks.tasks_framework.process_notices", "RUNNING")
    ]

    second = tasks_worker(db_name)
    running.append(second)
    # The notice is due again at once (its attempt's row lock went with the dead worker):
    # the next drain, asked for by any new notice or by the sweep, takes it.
    killed_at = time.monotonic()
    tasks_framework.enqueue(tasks_framework.process_notices)
    wait_for(lambda: fired().get(payload["uuid"]), 30, "the notice to be processed")
    assert time.monotonic() - killed_at < 10
    time.sleep(1.0)
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert (notice.state, notice.attempts) == ("processed", 2)
    assert fired() == {payload["uuid"]: 1}
    assert calls() == {payload["uuid"]: 2}  # the killed run and the one that completed
    # The sweep finds nothing left to do.
    result = tasks_framework.enqueue(tasks_framework.sweep)
    wait_for(lambda: DBTaskResult.objects.get(pk=result.id).status == "SUCCESSFUL", 30, "sweep")
    assert DBTaskResult.objects.get(pk=result.id).return_value == 0
    assert fired() == {payload["uuid"]: 1}


def test_a_worker_killed_mid_send_leaves_one_uncertain_submission_and_sends_the_rest_once(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import tasks_framework

    def worker(overrides: dict[str, Any], **env: str) -> Service:
        return tasks_worker(db_name, overrides=overrides, **env)

    killed_mid_send(settings, running, worker, TASKS_MODE, tasks_framework.request_sending)
