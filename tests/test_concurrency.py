"""Concurrent deliveries over real HTTP and real PostgreSQL connections."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

from tests.support.settings import UID
from topview_callbacks import signals
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
DELIVERIES = 50


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class WideBacklogServer(ThreadedWSGIServer):
    # socketserver's default backlog (5) resets connections when 50 arrive at once.
    request_queue_size = 256


@pytest.fixture
def server_url(transactional_db: None) -> Iterator[str]:
    """The project served by a real threaded HTTP server: a thread and a connection per request."""
    server = WideBacklogServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def deliver_at_once(url: str, bodies: list[str]) -> list[requests.Response]:
    """POST every body from its own thread, all released at the same moment."""
    start = threading.Barrier(len(bodies))

    def post(body: str) -> requests.Response:
        start.wait()
        return requests.post(
            url,
            data=body,
            headers={"Topview-Uid": UID, "Content-Type": "application/json"},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_one_uuid_delivered_50_times_at_once_gives_one_row_and_one_signal(
    server_url: str, record_signal: Any
) -> None:
    fired = record_signal(signals.task_outcome)
    redelivered = record_signal(signals.notice_redelivered)
    body = json.dumps(notice_payload(uuid="same-uuid"))
    responses = deliver_at_once(f"{server_url}/topview/notice/", [body] * DELIVERIES)

    assert [r.status_code for r in responses] == [200] * DELIVERIES
    acknowledgement = {"uuid": "same-uuid", "topviewUid": UID, "result": "success"}
    assert {r.content for r in responses} == {
        json.dumps(
            {"code": "200", "message": "Success", "result": acknowledgement},
            separators=(",", ":"),
        ).encode()
    }
    notice = Notice.objects.get()
    assert notice.state == NoticeState.PROCESSED
    assert len(fired.calls) == 1
    assert len(redelivered.calls) == DELIVERIES - 1


def test_50_different_uuids_for_one_task_at_once_fire_one_outcome(
    server_url: str, record_signal: Any
) -> None:
    fired = record_signal(signals.task_outcome)
    bodies = [json.dumps(notice_payload(task_id="one-task")) for _ in range(DELIVERIES)]
    responses = deliver_at_once(f"{server_url}/topview/notice/", bodies)

    assert [r.status_code for r in responses] == [200] * DELIVERIES
    assert Notice.objects.count() == DELIVERIES
    states = sorted(Notice.objects.values_list("state", flat=True))
    assert states == [NoticeState.DUPLICATE] * (DELIVERIES - 1) + [NoticeState.PROCESSED]
    assert SubmittedTask.objects.get().status == "success"
    assert len(fired.calls) == 1


def test_a_delivery_racing_a_poll_that_stores_its_uuid_is_answered_and_fires_once(
    server_url: str, record_signal: Any
) -> None:
    # A poll's answer is stored without the function's advisory lock; the delivery's own
    # store then meets the uuid at the unique index and must not fail (it once gave 500).
    from django.db import connection, transaction

    from topview_callbacks import processing

    fired = record_signal(signals.task_outcome)
    payload = notice_payload(uuid="raced-uuid", task_id="raced-task")
    stored, release = threading.Event(), threading.Event()

    def poll_stores_first() -> None:
        with transaction.atomic():
            processing.store(
                {
                    "uuid": "raced-uuid",
                    "biz_type": payload["bizType"],
                    "task_id": "raced-task",
                    "status": "success",
                    "result": payload["result"],
                    "source": "poll",
                }
            )
            stored.set()
            release.wait(30)
        connection.close()

    poller = threading.Thread(target=poll_stores_first)
    poller.start()
    assert stored.wait(30)
    with ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(
            requests.post,
            f"{server_url}/topview/notice/",
            data=json.dumps(payload),
            headers={"Topview-Uid": UID, "Content-Type": "application/json"},
            timeout=60,
        )

        def delivery_waits_on_the_uuid() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return bool(cursor.fetchone()[0])

        for _ in range(300):
            if delivery_waits_on_the_uuid():
                break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the delivery never waited on the stored uuid")
        release.set()
        poller.join(30)
        response = answer.result(60)

    assert response.status_code == 200
    assert response.json()["result"]["uuid"] == "raced-uuid"
    assert Notice.objects.filter(uuid="raced-uuid").count() == 1
    processing.process_due()
    assert Notice.objects.get(uuid="raced-uuid").state == NoticeState.PROCESSED
    assert len(fired.calls) == 1


def test_a_delivery_whose_receiver_failed_while_its_uuid_was_delivered_again_is_a_duplicate(
    transactional_db: None,
) -> None:
    # The first delivery's receiver raises while a second delivery of the same uuid waits
    # on the uuid's lock; the first rolls back, the second stores, fires and commits before
    # the first stores the notice again as failed: the first is then a repeated delivery,
    # answered 200, and the outcome fires once (it once would have answered 500).
    from django.db import connection

    payload = notice_payload(uuid="retried-uuid", task_id="retried-task")
    answers: list[Any] = []

    def delivered_again() -> None:
        try:
            answers.append(deliver_notice(payload, run_on_commit=False))
        finally:
            connection.close()

    again = threading.Thread(target=delivered_again)
    calls: list[str] = []

    def receiver(sender: Any, notice: Notice, **kwargs: Any) -> None:
        calls.append("second" if threading.current_thread() is again else "first")
        if threading.current_thread() is again:
            return
        again.start()
        for _ in range(600):
            with connection.cursor() as cursor:  # pg_locks is live inside a transaction
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:
                    break
            threading.Event().wait(0.05)
        else:
            pytest.fail("the second delivery never waited on the uuid")
        raise RuntimeError("the first attempt broke")

    signals.task_outcome.connect(receiver, weak=False, dispatch_uid="fails-once-meanwhile")
    try:
        first = deliver_notice(payload, run_on_commit=False)
        again.join(60)
    finally:
        signals.task_outcome.disconnect(dispatch_uid="fails-once-meanwhile")

    assert first.status_code == 200
    assert first.json()["result"]["uuid"] == "retried-uuid"
    assert [answer.status_code for answer in answers] == [200]
    assert calls == ["first", "second"]
    notice = Notice.objects.get(uuid="retried-uuid")
    assert (notice.state, notice.attempts, notice.last_error) == (NoticeState.PROCESSED, 1, "")
    assert SubmittedTask.objects.get(task_id="retried-task").status == "success"
