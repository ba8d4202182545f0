"""Real Celery workers on Redis, processing notices stored in the PostgreSQL test database.

The workers and gunicorn servers come from tests/support/ (processes.py starts them;
worker.py is their Celery and WSGI app); their receivers record what they did in Redis.
Tests that stop a broker start their own redis-server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.processes import (
    CuttableProxy,
    Service,
    celery_worker,
    free_port,
    gunicorn,
    kill_mid_notice,
    post_notice,
    private_redis,
    states,
    wait_for,
)
from tests.support.recording import calls, fired, key, recording_receiver, records
from tests.support.sending import killed_mid_send

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.usefixtures("redis_records")]


# --- tests ----------------------------------------------------------------------------------


def test_worker_processes_every_notice_once(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import tasks
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    running.append(celery_worker(db_name))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    payloads = [notice_payload(biz) for biz in ("M2V_PREVIEW", "VOICE_CLONE", "SCRAPER") * 7]
    for payload in payloads + payloads[:5]:  # five delivered twice
        assert deliver_notice(payload).status_code == 200
    uuids = [p["uuid"] for p in payloads]
    wait_for(lambda: set(states(*uuids).values()) == {"processed"}, 60, "processing")
    # A redelivered message for a processed notice does nothing.
    tasks.enqueue_notice(Notice.objects.get(uuid=uuids[0]).pk)
    time.sleep(1.0)
    assert fired() == dict.fromkeys(uuids, 1)
    assert set(Notice.objects.values_list("attempts", flat=True)) == {1}
    assert f"Topview notice {uuids[0]!r}" in running[0].output()  # structured log lines


def test_drains_process_every_notice_once_and_retry_failures_alone(
    db_name: str,
    running: list[Service],
    settings: Any,
    receiver_rows: Callable[[], dict[str, int]],
) -> None:
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    retries = {"MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0.5}
    running.append(celery_worker(db_name, concurrency=2, overrides=retries))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery", **retries}
    payloads = [notice_payload(biz) for biz in ("M2V_PREVIEW", "VOICE_CLONE", "SCRAPER") * 9]
    failing = payloads[4]
    records().sadd(key("fail"), failing["taskId"])
    for payload in payloads + payloads[:3]:  # three delivered twice
        assert deliver_notice(payload).status_code == 200
    uuids = [p["uuid"] for p in payloads]
    expected = {uuid: "processed" for uuid in uuids} | {failing["uuid"]: "failed"}

    def settled() -> bool:
        done = states(*uuids) == expected
        return done and Notice.objects.get(uuid=failing["uuid"]).attempts == 2

    wait_for(settled, 60, "the batches and the retry")
    time.sleep(1.0)
    assert fired() == {uuid: 1 for uuid in uuids if uuid != failing["uuid"]}
    # What the receivers wrote committed once per processed notice; the failing notice's
    # writes never did. (A notice batched with the failing one ran twice: its first run was
    # rolled back with the batch.)
    assert receiver_rows() == {uuid: 1 for uuid in uuids if uuid != failing["uuid"]}
    assert calls()[failing["uuid"]] == 2  # the drain's attempt, then its own retry message
    assert "topview_callbacks.process_notices" in running[0].output()


def test_a_worker_keeping_connections_recovers_when_the_database_drops_them(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from django.db import connection

    from topview_callbacks.testing import deliver_notice, notice_payload

    running.append(celery_worker(db_name, overrides={"RETRY_BACKOFF": 0.2}))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    first = notice_payload()
    assert deliver_notice(first).status_code == 200
    wait_for(lambda: states(first["uuid"]) == {first["uuid"]: "processed"}, 30, "first notice")

    # A restart or failover: the database ends the connection the worker kept.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [db_name],
        )
        assert cursor.fetchone()[0] >= 1
    later = [notice_payload() for _ in range(3)]
    for payload in later:
        assert deliver_notice(payload).status_code == 200
    uuids = [p["uuid"] for p in later]
    wait_for(lambda: set(states(*uuids).values()) == {"processed"}, 30, "notices after the drop")
    assert fired() == dict.fromkeys([first["uuid"], *uuids], 1)
    assert "The database is unreachable" in running[0].output()  # it did meet the dropped one


def test_a_raising_receiver_is_retried_with_backoff_then_failed_and_replay_runs_it(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import processing, signals
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    overrides = {"MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 1.0}
    running.append(celery_worker(db_name, overrides=overrides))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    payload = notice_payload("M2V_EXPORT")
    records().sadd(key("fail"), payload["taskId"])
    assert deliver_notice(payload).status_code == 200

    def gave_up() -> bool:
        notice = Notice.objects.get(uuid=payload["uuid"])
        return (
            notice.state == "failed"
            and notice.attempts == 3
            and "giving up" in (running[0].output())
        )

    wait_for(gave_up, 30, "three failed attempts")
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert "told to fail" in notice.last_error
    times = [float(t) for t in records().lrange(key(f"times:{payload['uuid']}"), 0, -1)]
    assert len(times) == 3
    # Backoff 1 s then 2 s, each with "equal jitter" (50-100% of it).
    assert 0.5 <= times[1] - times[0] < 5
    assert 1.0 <= times[2] - times[1] < 6
    assert fired() == {}
    time.sleep(1.0)
    assert calls() == {payload["uuid"]: 3}  # no 4th attempt

    records().srem(key("fail"), payload["taskId"])
    signals.task_outcome.connect(recording_receiver, dispatch_uid="topview-test-recorder")
    try:
        replayed = processing.replay_notice(notice.pk)
    finally:
        signals.task_outcome.disconnect(dispatch_uid="topview-test-recorder")
    assert replayed is not None and replayed.state == "processed"
    assert fired() == {payload["uuid"]: 1}


def test_a_worker_killed_mid_receiver_leaves_its_notice_to_the_next_job_at_once(
    db_name: str,
    running: list[Service],
    settings: Any,
    receiver_rows: Callable[[], dict[str, int]],
) -> None:
    from topview_callbacks import tasks
    from topview_callbacks.models import Notice

    # The killed worker's message comes back only after the visibility timeout: what takes
    # the notice over at once is the next job, here a drain (another notice arriving, or
    # the sweep, asks for one).
    worker_env = {"TOPVIEW_TEST_VISIBILITY": "60", "TOPVIEW_TEST_PREFETCH": "1"}
    first = celery_worker(db_name, **worker_env)
    running.append(first)
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    payload = kill_mid_notice(first)
    assert receiver_rows() == {}  # its write was rolled back with the attempt

    running.append(celery_worker(db_name, **worker_env))
    killed_at = time.monotonic()
    tasks.request_drain()
    wait_for(lambda: fired().get(payload["uuid"]), 30, "the notice to be processed")
    assert time.monotonic() - killed_at < 10  # no sweep, no visibility timeout
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert (notice.state, notice.attempts) == ("processed", 2)
    assert fired() == {payload["uuid"]: 1}
    assert calls() == {payload["uuid"]: 2}  # the killed run and the one that completed
    assert receiver_rows() == {payload["uuid"]: 1}


def test_broker_down_when_a_notice_arrives_then_back(
    db_name: str, running: list[Service], uid: str
) -> None:
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import notice_payload

    broker_port = free_port()
    broker_url = f"redis://127.0.0.1:{broker_port}/0"
    broker = private_redis(broker_port)
    running.append(broker)
    web, port = gunicorn(
        db_name, overrides={"PROCESSING": "celery"}, TOPVIEW_TEST_BROKER=broker_url
    )
    running.append(web)
    # The worker sweeps every second (beat), taking notices pending for over 2 s.
    worker = celery_worker(
        db_name,
        overrides={"SWEEP_AFTER": 2},
        TOPVIEW_TEST_BROKER=broker_url,
        TOPVIEW_TEST_BEAT_SWEEP="1",
    )
    running.append(worker)

    before = notice_payload()
    assert post_notice(port, before, uid)[0] == 200
    wait_for(lambda: fired().get(before["uuid"]), 30, "processing with the broker up")

    broker.stop()
    during = notice_payload()
    status, body, seconds = post_notice(port, during, uid)
    assert status == 200 and body["result"]["result"] == "success"
    assert seconds < 10  # publishing gives up quickly
    assert Notice.objects.get(uuid=during["uuid"]).state == "pending"
    assert "the sweep queues it later" in web.output()

    broker.start(lambda: " Ready to accept connections" in broker.output(), timeout=20)
    wait_for(lambda: fired().get(during["uuid"]), 90, "processing once the broker is back")
    time.sleep(2.0)  # further sweeps must not fire it again
    assert fired() == {before["uuid"]: 1, during["uuid"]: 1}
    assert Notice.objects.get(uuid=during["uuid"]).state == "processed"


def test_database_unavailable_answers_503_and_writes_nothing(
    db_name: str, running: list[Service], uid: str
) -> None:
    from django.db import connection

    from topview_callbacks.models import Notice
    from topview_callbacks.testing import notice_payload

    proxy = CuttableProxy(int(connection.settings_dict["PORT"] or 5432))
    web, port = gunicorn(db_name, overrides={"PROCESSING": "manual"}, PGPORT=str(proxy.port))
    running.append(web)
    first = notice_payload()
    assert post_notice(port, first, uid)[0] == 200  # through the proxy, on a kept connection

    proxy.cut()
    second = notice_payload()
    for _ in range(2):  # the kept connection breaks; then no new one can be made
        status, body, _seconds = post_notice(port, second, uid)
        assert status == 503
        assert body == {
            "code": "503",
            "message": "The database is unavailable; please retry.",
            "result": {"uuid": second["uuid"], "topviewUid": uid, "result": "fail"},
        }
    assert not Notice.objects.filter(uuid=second["uuid"]).exists()

    proxy.restore()
    status, body, _seconds = post_notice(port, second, uid)  # Topview retries
    assert status == 200 and body["result"]["result"] == "success"
    stored = Notice.objects.get(uuid=second["uuid"])
    assert (stored.attempts, stored.state) == (0, "pending")
    assert Notice.objects.count() == 2


def test_a_worker_killed_mid_send_leaves_one_uncertain_submission_and_sends_the_rest_once(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import tasks

    def worker(overrides: dict[str, Any], **env: str) -> Service:
        return celery_worker(db_name, overrides=overrides, **env)

    killed_mid_send(settings, running, worker, {"PROCESSING": "celery"}, tasks.request_sending)
