"""Receivers commit with the outcome: what a receiver writes commits with its notice's
outcome or not at all, whoever runs the receivers and whatever dies mid-way.

The receivers of the process tests write rows into ``RECEIVER_ROWS``, a table standing for
the user's own data; what they hand to ``transaction.on_commit()`` is counted as fired.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from tests.support.processes import (
    Service,
    celery_worker,
    gunicorn,
    post_notice,
    process_env,
    states,
    tasks_worker,
    wait_for,
)
from tests.support.recording import RECEIVER_ROWS, calls, fired, key, records
from tests.support.settings import UID, topview
from topview_callbacks import signals
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

# --- in this process, on SQLite and PostgreSQL ----------------------------------------------


@pytest.fixture
def rows(transactional_db: None) -> Iterator[Callable[[], dict[str, int]]]:
    """``RECEIVER_ROWS`` in the test database; returns a function counting its rows per uuid."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {RECEIVER_ROWS} (uuid varchar(128) NOT NULL)")
        cursor.execute(f"DELETE FROM {RECEIVER_ROWS}")

    def count() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT uuid, count(*) FROM {RECEIVER_ROWS} GROUP BY uuid")
            return {uuid: int(n) for uuid, n in cursor.fetchall()}

    yield count
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {RECEIVER_ROWS}")


class WritingReceiver:
    """Writes a row for the notice, queues a side effect on commit, then raises while
    ``broken`` is set."""

    def __init__(self) -> None:
        self.broken = True
        self.side_effects: list[str] = []

    def __call__(self, sender: Any, notice: Notice, **kwargs: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {RECEIVER_ROWS} (uuid) VALUES (%s)", [notice.uuid])
        uuid = notice.uuid
        transaction.on_commit(lambda: self.side_effects.append(uuid))
        if self.broken:
            raise RuntimeError("the receiver broke after its write")


@pytest.fixture
def writing_receiver() -> Iterator[WritingReceiver]:
    receiver = WritingReceiver()
    signals.task_outcome.connect(receiver, weak=False, dispatch_uid="writing-receiver")
    yield receiver
    signals.task_outcome.disconnect(dispatch_uid="writing-receiver")


@pytest.mark.parametrize("mode", ["inline", "manual"])
def test_a_receiver_that_writes_then_raises_leaves_nothing_and_its_replay_writes_once(
    rows: Callable[[], dict[str, int]], writing_receiver: WritingReceiver, mode: str
) -> None:
    payload = notice_payload("M2V_PREVIEW")
    with topview(PROCESSING=mode):
        assert deliver_notice(payload).status_code == 200
        if mode == "manual":
            call_command("topview_process_pending", stdout=io.StringIO())
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert notice.state == NoticeState.FAILED
    assert "Traceback" in notice.last_error
    assert "RuntimeError: the receiver broke after its write" in notice.last_error
    assert rows() == {}  # its write was rolled back with the attempt
    assert writing_receiver.side_effects == []  # and its on_commit never ran

    writing_receiver.broken = False
    with topview(PROCESSING=mode):
        call_command("topview_reprocess", payload["uuid"], stdout=io.StringIO())
    assert Notice.objects.get(uuid=payload["uuid"]).state == NoticeState.PROCESSED
    assert rows() == {payload["uuid"]: 1}
    assert writing_receiver.side_effects == [payload["uuid"]]


def test_a_receiver_that_swallows_a_database_error_fails_its_attempt(
    rows: Callable[[], dict[str, int]],
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not abort a transaction on an error")

    def swallowing(sender: Any, notice: Notice, **kwargs: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {RECEIVER_ROWS} (uuid) VALUES (%s)", [notice.uuid])
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
        except Exception:
            pass  # the transaction is broken now, and PostgreSQL would not commit it

    signals.task_outcome.connect(swallowing, weak=False, dispatch_uid="swallowing")
    try:
        payload = notice_payload()
        assert deliver_notice(payload).status_code == 200
    finally:
        signals.task_outcome.disconnect(dispatch_uid="swallowing")
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert notice.state == NoticeState.FAILED
    # The last line of the traceback an operator reads on the notice: what to do.
    assert notice.last_error.endswith(
        "RuntimeError: A receiver caught a database error and went on: PostgreSQL refuses "
        "to commit the transaction. Let the error propagate, or wrap the receiver's own "
        "query in transaction.atomic().\n"
    )
    assert rows() == {}


CLOSED = (
    "RuntimeError: A receiver closed the database connection: the attempt's transaction "
    "went with it. Leave closing connections to Django.\n"
)


def _closing(sender: Any, notice: Notice, **kwargs: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {RECEIVER_ROWS} (uuid) VALUES (%s)", [notice.uuid])
    connection.close()  # the transaction, and the row above, go with it


@pytest.mark.postgres  # SQLite's in-memory test database is never closed
def test_a_receiver_that_closes_the_connection_fails_its_delivery_and_it_is_retried(
    rows: Callable[[], dict[str, int]], record_signal: Any
) -> None:
    # Django ends an atomic block whose connection was closed without an error: the
    # delivery would be acknowledged with nothing stored, and never delivered again.
    failed = record_signal(signals.notice_processing_failed)
    signals.task_outcome.connect(_closing, weak=False, dispatch_uid="closing")
    try:
        payload = notice_payload()
        assert deliver_notice(payload).status_code == 200
    finally:
        signals.task_outcome.disconnect(dispatch_uid="closing")
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert (notice.state, notice.attempts) == (NoticeState.FAILED, 1)
    assert notice.next_attempt_at is not None
    assert notice.last_error.endswith(CLOSED)
    assert [call["notice"].pk for call in failed.calls] == [notice.pk]
    assert rows() == {}
    Notice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    call_command("topview_process_pending", stdout=io.StringIO())
    assert Notice.objects.get(pk=notice.pk).state == NoticeState.PROCESSED


@pytest.mark.postgres
def test_a_receiver_that_closes_the_connection_fails_a_queued_attempt(
    rows: Callable[[], dict[str, int]],
) -> None:
    from topview_callbacks import processing

    payload = notice_payload()
    with topview(PROCESSING="celery"):
        assert deliver_notice(payload).status_code == 200
    signals.task_outcome.connect(_closing, weak=False, dispatch_uid="closing")
    try:
        batch = processing.process_due(limit=10)
    finally:
        signals.task_outcome.disconnect(dispatch_uid="closing")
    assert [(n.uuid, n.state) for n in batch.notices] == [(payload["uuid"], NoticeState.FAILED)]
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert (notice.state, notice.attempts, notice.claim) == (NoticeState.FAILED, 1, "")
    assert notice.last_error.endswith(CLOSED)
    assert notice.submitted_task is not None  # the outcome is recorded; the receivers failed
    assert rows() == {}


# --- processes killed mid-receiver, on PostgreSQL -----------------------------------------


def _children(service: Service) -> list[int]:
    assert service.proc is not None
    found = subprocess.run(
        ["pgrep", "-P", str(service.proc.pid)], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.postgres
@pytest.mark.redis
def test_a_web_worker_killed_mid_receiver_leaves_nothing_and_the_redelivery_finishes_it(
    db_name: str, running: list[Service], receiver_rows: Callable[[], dict[str, int]]
) -> None:
    web, port = gunicorn(db_name, overrides={"PROCESSING": "inline"})
    running.append(web)
    payload = notice_payload("VOICE_CLONE")
    records().hset(key("sleep"), payload["taskId"], 60)
    answers: list[Any] = []

    def first_delivery() -> None:
        try:
            answers.append(post_notice(port, payload, UID, timeout=90))
        except OSError as exc:  # the worker died: no acknowledgement
            answers.append(exc)

    sender = threading.Thread(target=first_delivery)
    sender.start()
    wait_for(lambda: calls().get(payload["uuid"]) == 1, 30, "the receiver to write and sleep")
    [worker] = _children(web)
    subprocess.run(["kill", "-KILL", str(worker)], check=True)
    sender.join(30)
    assert isinstance(answers[0], OSError)  # Topview got no acknowledgement...
    assert not Notice.objects.filter(uuid=payload["uuid"]).exists()  # ...nothing is stored
    assert receiver_rows() == {}

    records().hdel(key("sleep"), payload["taskId"])
    resent_at = time.monotonic()
    status, body, _seconds = post_notice(port, payload, UID)  # Topview sends it again
    assert status == 200 and body["result"]["result"] == "success"
    assert time.monotonic() - resent_at < 10  # within seconds, no cron
    assert states(payload["uuid"]) == {payload["uuid"]: "processed"}
    assert receiver_rows() == {payload["uuid"]: 1}
    assert fired() == {payload["uuid"]: 1}


_PROCESS_PENDING = """
import tests.support.worker  # the recording receiver, with TOPVIEW_TEST_ROLE set
from django.core.management import call_command
call_command("topview_process_pending")
"""


@pytest.mark.postgres
@pytest.mark.redis
def test_process_pending_killed_mid_receiver_then_run_again_at_once_finishes_it(
    db_name: str, running: list[Service], receiver_rows: Callable[[], dict[str, int]]
) -> None:
    payload = notice_payload("VOICE_CLONE")
    with topview(PROCESSING="manual"):
        assert deliver_notice(payload).status_code == 200
    records().hset(key("sleep"), payload["taskId"], 60)
    env = process_env(db_name, TOPVIEW_TEST_ROLE="command")
    command = Service("process-pending", [sys.executable, "-c", _PROCESS_PENDING], env)
    running.append(command.start())
    wait_for(lambda: calls().get(payload["uuid"]) == 1, 30, "the receiver to write and sleep")
    command.kill(signal.SIGKILL)
    assert states(payload["uuid"]) == {payload["uuid"]: "pending"}
    assert receiver_rows() == {}

    records().hdel(key("sleep"), payload["taskId"])
    again = subprocess.run(
        [sys.executable, "-c", _PROCESS_PENDING], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "Processed 1 notice(s)." in again.stdout
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert (notice.state, notice.attempts) == ("processed", 2)
    assert receiver_rows() == {payload["uuid"]: 1}
    assert fired() == {payload["uuid"]: 1}


@pytest.mark.postgres
@pytest.mark.redis
def test_a_slow_receiver_holds_back_neither_other_notices_nor_a_duplicate_beyond_its_time(
    db_name: str, running: list[Service], redis_records: None
) -> None:
    web, port = gunicorn(db_name, workers=3, overrides={"PROCESSING": "inline"})
    running.append(web)
    slow, other = notice_payload("VOICE_CLONE"), notice_payload("VOICE_CLONE")
    records().hset(key("sleep"), slow["taskId"], 2)
    answers: dict[str, Any] = {}
    answered_at: dict[str, float] = {}

    def deliver(name: str, payload: dict[str, Any]) -> None:
        answers[name] = post_notice(port, payload, UID)
        answered_at[name] = time.monotonic()

    started = time.monotonic()
    threads = [threading.Thread(target=deliver, args=("slow", slow))]
    threads[0].start()
    wait_for(lambda: calls().get(slow["uuid"]) == 1, 10, "the slow receiver to start", every=0.02)
    for name, payload in (("other", other), ("duplicate", slow)):
        threads.append(threading.Thread(target=deliver, args=(name, payload)))
        threads[-1].start()
    for thread in threads:
        thread.join(30)
    assert {name: answer[0] for name, answer in answers.items()} == dict.fromkeys(answers, 200)
    # Another notice goes its own way: answered while the slow one's receiver still runs
    # (compared with the slow one's answer, not with a fixed time: on a busy machine its
    # own answer took 1.35 s once).
    assert answered_at["other"] < answered_at["slow"]
    # The duplicate waits for the slow notice's commit (its uuid is taken, not yet
    # committed), then is answered as a repeat: no longer than the receiver's own time.
    assert answers["slow"][2] >= 2.0
    assert time.monotonic() - started < 2.0 + 1.5
    assert fired() == {slow["uuid"]: 1, other["uuid"]: 1}
    assert calls()[slow["uuid"]] == 1  # the duplicate ran nothing


# --- workers killed in a loop during a load -----------------------------------------------


def _kill_in_a_loop(
    start: Callable[[], Service], running: list[Service], stop: threading.Event, every: float
) -> threading.Thread:
    """SIGKILL the worker ``every`` seconds and start a new one, until ``stop``."""

    def loop() -> None:
        while not stop.wait(every):
            running[-1].kill(signal.SIGKILL)
            running.append(start())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _load_while_killing(
    port: int,
    start_worker: Callable[[], Service],
    running: list[Service],
    receiver_rows: Callable[[], dict[str, int]],
    drain: Callable[[], object],
) -> None:
    payloads = [notice_payload("M2V_PREVIEW") for _ in range(120)]
    for payload in payloads[::4]:  # a quarter of the receivers are slow: more to kill mid-way
        records().hset(key("sleep"), payload["taskId"], 0.3)
    running.append(start_worker())
    stop = threading.Event()
    killer = _kill_in_a_loop(start_worker, running, stop, every=2.0)
    for payload in payloads:
        assert post_notice(port, payload, UID)[0] == 200
        time.sleep(0.02)
    stop.set()
    killer.join(60)
    uuids = [payload["uuid"] for payload in payloads]
    drain()  # what is left (its attempt killed) is due at once: one more drain takes it

    def all_done() -> bool:
        if set(states(*uuids).values()) == {"processed"}:
            return True
        drain()
        return False

    # Returns as soon as all are done; the long limit is for a loaded machine, where a
    # worker killed every 2 s barely starts and the last one drains the whole backlog.
    wait_for(all_done, 240, "every notice processed", every=2.0)
    assert receiver_rows() == dict.fromkeys(uuids, 1)  # every outcome's rows, exactly once
    assert fired() == dict.fromkeys(uuids, 1)
    assert sum(calls().values()) > len(uuids)  # some runs were really killed and rolled back


@pytest.mark.postgres
@pytest.mark.redis
def test_celery_workers_killed_in_a_loop_leave_every_receivers_rows_exactly_once(
    db_name: str, running: list[Service], receiver_rows: Callable[[], dict[str, int]]
) -> None:
    from topview_callbacks import tasks

    web, port = gunicorn(db_name, workers=2, overrides={"PROCESSING": "celery"})
    running.append(web)
    with topview(PROCESSING="celery"):
        _load_while_killing(
            port,
            lambda: celery_worker(db_name, concurrency=2),
            running,
            receiver_rows,
            tasks.request_drain,
        )


@pytest.mark.postgres
@pytest.mark.redis
def test_tasks_workers_killed_in_a_loop_leave_every_receivers_rows_exactly_once(
    db_name: str, running: list[Service], receiver_rows: Callable[[], dict[str, int]]
) -> None:
    pytest.importorskip("django_tasks_db")
    from tests.support.processes import TASKS_MODE
    from topview_callbacks import tasks_framework

    web, port = gunicorn(db_name, workers=2, overrides=TASKS_MODE)
    running.append(web)
    with topview(**TASKS_MODE):
        _load_while_killing(
            port,
            lambda: tasks_worker(db_name),
            running,
            receiver_rows,
            lambda: tasks_framework.enqueue(tasks_framework.process_notices),
        )
