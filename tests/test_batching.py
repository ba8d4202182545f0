"""batching.drain and the Celery drain: many notices per message, each still once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from topview_callbacks import batching, tasks
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)
BASE = {"UID": "test-uid-NsDAaOPF4jLu", "API_KEY": "sk-test-key"}


def topview(**values: Any) -> Any:
    return override_settings(TOPVIEW_CALLBACKS={**BASE, **values})


def store(count: int, **payload: Any) -> list[str]:
    uuids = []
    with topview(PROCESSING="manual"):
        for _ in range(count):
            body = notice_payload(**payload)
            assert deliver_notice(body).status_code == 200
            uuids.append(body["uuid"])
    return uuids


def test_drain_takes_up_to_limit_oldest_first_then_the_rest(record_signal: Any) -> None:
    fired = record_signal()
    uuids = store(5)
    with topview():
        first = batching.drain(3)
        assert [n.uuid for n in first] == uuids[:3]
        assert [n.uuid for n in batching.drain(3)] == uuids[3:]
        assert batching.drain(3) == []
    assert [call["notice"].uuid for call in fired.calls] == uuids
    assert set(Notice.objects.values_list("state", "attempts")) == {(NoticeState.PROCESSED, 1)}
    assert SubmittedTask.objects.count() == 5


def test_drain_keeps_failures_failed_and_duplicates_unfired(
    failing_receiver: Any, record_signal: Any
) -> None:
    store(1, task_id="t-1", status="fail")
    store(1, task_id="t-1")  # another uuid with another outcome for the same task
    with topview():
        done = batching.drain(10)
    assert [n.state for n in done] == [NoticeState.FAILED, NoticeState.DUPLICATE]
    assert "the receiver is broken" in done[0].last_error
    assert failing_receiver.calls == 1


@pytest.mark.postgres
def test_drain_costs_one_statement_per_notice() -> None:
    store(4)
    with topview(), CaptureQueriesContext(connection) as queries:
        assert len(batching.drain(10)) == 4
    # Per notice: claim + record + link in one statement that also marks the previous
    # notice processed; then the claim that finds nothing left marks the last one.
    assert len(queries.captured_queries) == 4 + 1
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PROCESSED}


@pytest.mark.postgres
def test_a_drain_that_reaches_its_limit_marks_its_last_notice_on_its_own() -> None:
    uuids = store(3)
    with topview(), CaptureQueriesContext(connection) as queries:
        assert [n.uuid for n in batching.drain(2)] == uuids[:2]
    assert len(queries.captured_queries) == 2 + 1
    states = dict(Notice.objects.values_list("uuid", "state"))
    assert [states[uuid] for uuid in uuids] == [
        NoticeState.PROCESSED,
        NoticeState.PROCESSED,
        NoticeState.PENDING,
    ]
    assert Notice.objects.filter(state=NoticeState.PROCESSED, processed_at=None).count() == 0


@pytest.mark.postgres
def test_a_failing_claim_does_not_lose_the_previous_notices_mark(
    monkeypatch: pytest.MonkeyPatch, record_signal: Any
) -> None:
    fired = record_signal()
    uuids = store(2)
    real = batching.outcomes.claim_next_and_record
    calls: list[object] = []

    def second_claim_fails(marking: Notice | None = None) -> Any:
        calls.append(marking)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(marking)

    monkeypatch.setattr(batching.outcomes, "claim_next_and_record", second_claim_fails)
    with topview(), pytest.raises(RuntimeError, match="went away"):
        batching.drain(10)
    states = dict(Notice.objects.values_list("uuid", "state"))
    assert states == {uuids[0]: NoticeState.PROCESSED, uuids[1]: NoticeState.PENDING}
    assert [call["notice"].uuid for call in fired.calls] == uuids[:1]


@pytest.mark.postgres
def test_workers_draining_at_once_fire_each_notice_once(record_signal: Any) -> None:
    fired = record_signal()
    uuids = store(30)
    results: list[int] = []

    def work() -> None:
        try:
            results.append(len(batching.drain(100)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(3)]
    with topview():  # settings are process-wide: overridden once, not in each thread
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sum(results) == 30
    assert sorted(call["notice"].uuid for call in fired.calls) == sorted(uuids)


# --- the Celery side ------------------------------------------------------------------------


@pytest.fixture
def drains(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Drain messages the code would publish (their options), instead of publishing them."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.drain_task, "apply_async", lambda **options: sent.append(options))
    return sent


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(batching.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(tasks, "_drain_window", batching.DrainWindow())
    return now


def test_a_window_gets_one_drain_now_and_one_at_its_end(drains: Any, clock: Any) -> None:
    with topview(PROCESSING="celery", BATCH_SIZE=50, BATCH_WINDOW=0.1):
        tasks.request_drain()  # the first notice: a drain right away
        clock[0] += 0.02
        tasks.request_drain()  # stored after that drain may have finished: one at the end
        clock[0] += 0.02
        tasks.request_drain()  # covered by the one at the end
        clock[0] += 0.07
        tasks.request_drain()  # a new window
    countdowns = [message["countdown"] for message in drains]
    assert countdowns[0] is None and countdowns[2] is None
    assert countdowns[1] == pytest.approx(0.08)
    assert len(drains) == 3


def test_celery_with_batches_requests_a_drain_not_a_message_per_notice(
    drains: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks.process_notice_task, "apply_async", pytest.fail)
    with topview(PROCESSING="celery", BATCH_SIZE=50):
        for _ in range(3):
            assert deliver_notice(notice_payload()).status_code == 200
    assert [message["countdown"] for message in drains] == [None, pytest.approx(0.05)]
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PENDING}


def test_the_drain_task_retries_failures_alone_and_asks_for_more_when_full(
    drains: Any, monkeypatch: pytest.MonkeyPatch, failing_receiver: Any
) -> None:
    retries: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(
        tasks.process_notice_task,
        "apply_async",
        lambda args=None, **options: retries.append((args, options)),
    )
    store(3)
    with topview(BATCH_SIZE=2, RETRY_BACKOFF=10.0, RETRY_JITTER=False):
        assert tasks.drain_task.apply().get() == 2
        assert len(drains) == 1  # a full batch: more may be waiting
        assert tasks.drain_task.apply().get() == 1
        assert len(drains) == 1
    failed = Notice.objects.filter(state=NoticeState.FAILED).order_by("received_at", "id")
    assert [args for args, _ in retries] == [(n.pk,) for n in failed]
    assert {options["countdown"] for _, options in retries} == {10.0}
    assert set(failed.values_list("attempts", flat=True)) == {1}
