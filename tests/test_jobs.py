"""jobs.py: the job both queues run. Many notices per job, each still once; failures
retried alone; a batch's receivers commit with it or not at all."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connections

from tests.support.settings import topview
from topview_callbacks import jobs, processing, signals, tasks
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)


def store(count: int, **payload: Any) -> list[str]:
    uuids = []
    with topview(PROCESSING="manual"):
        for _ in range(count):
            body = notice_payload(**payload)
            assert deliver_notice(body).status_code == 200
            uuids.append(body["uuid"])
    return uuids


@dataclass
class RecordingQueue:
    """``jobs.Queue`` that records what the job asks of its queue."""

    notices: list[tuple[int, float | None]] = field(default_factory=list)
    media: list[int] = field(default_factory=list)
    drains: int = 0

    def enqueue_notice(self, notice_id: int, *, delay: float | None = None) -> None:
        self.notices.append((notice_id, delay))

    def enqueue_media(self, media_id: int, *, delay: float | None = None) -> None:
        self.media.append(media_id)

    def request_drain(self) -> None:
        self.drains += 1


def test_a_batch_takes_up_to_limit_oldest_first_then_the_rest(record_signal: Any) -> None:
    fired = record_signal()
    uuids = store(5)
    with topview():
        first = processing.process_due(limit=3)
        assert [n.uuid for n in first.notices] == uuids[:3]
        assert [n.uuid for n in processing.process_due(limit=3).notices] == uuids[3:]
        assert processing.process_due(limit=3).claimed == 0
    assert [call["notice"].uuid for call in fired.calls] == uuids
    assert set(Notice.objects.values_list("state", "attempts")) == {(NoticeState.PROCESSED, 1)}
    assert SubmittedTask.objects.count() == 5


def test_a_batch_keeps_failures_failed_and_duplicates_unfired(
    failing_receiver: Any, record_signal: Any
) -> None:
    store(1, task_id="t-shared", status="fail")
    store(1, task_id="t-shared", status="success")
    with topview(RETRY_BACKOFF=10.0):
        done = processing.process_due(limit=10).notices
    assert [n.state for n in done] == [NoticeState.FAILED, NoticeState.DUPLICATE]
    assert "the receiver is broken" in done[0].last_error
    assert done[0].next_attempt_at is not None  # retried later
    assert failing_receiver.calls == 1
    assert SubmittedTask.objects.get().status == "fail"  # the outcome is recorded all the same


def test_a_receivers_writes_commit_once_even_when_a_neighbours_receiver_raises() -> None:
    uuids = store(3)

    def write_then_maybe_raise(sender: Any, notice: Notice, **kwargs: Any) -> None:
        # Each receiver run leaves a mark in the database, in the attempt's transaction.
        SubmittedTask.objects.create(biz_type="MARK", task_id=f"{notice.uuid}-{id(kwargs)}")
        if notice.uuid == uuids[1]:
            raise RuntimeError("the second notice's receiver breaks")

    signals.task_outcome.connect(write_then_maybe_raise, weak=False, dispatch_uid="w")
    try:
        with topview(RETRY_BACKOFF=10.0):
            done = processing.process_due(limit=10).notices
    finally:
        signals.task_outcome.disconnect(dispatch_uid="w")
    states = {n.uuid: n.state for n in done}
    assert states == {
        uuids[0]: NoticeState.PROCESSED,
        uuids[1]: NoticeState.FAILED,
        uuids[2]: NoticeState.PROCESSED,
    }
    marks = SubmittedTask.objects.filter(biz_type="MARK").values_list("task_id", flat=True)
    # The first notice's receiver ran twice (its first run was rolled back with the batch);
    # what it wrote was kept once. The failing notice's writes were never kept.
    assert sorted(mark.rsplit("-", 1)[0] for mark in marks) == sorted([uuids[0], uuids[2]])


def test_the_job_retries_failures_alone_after_their_backoff(
    failing_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs.logger, "warning", lambda *a, **k: None)
    store(3)
    queue = RecordingQueue()
    with topview(RETRY_BACKOFF=10.0, RETRY_BACKOFF_MAX=10.0):
        assert jobs.process_notices(queue) == 3
    failed = Notice.objects.filter(state=NoticeState.FAILED).order_by("received_at", "id")
    assert [notice_id for notice_id, _delay in queue.notices] == [n.pk for n in failed]
    assert all(5.0 <= delay <= 10.0 for _id, delay in queue.notices)  # the jittered backoff
    assert set(failed.values_list("attempts", flat=True)) == {1}
    assert queue.drains == 0  # nothing more was due


def test_a_job_that_runs_out_of_time_asks_for_another(monkeypatch: pytest.MonkeyPatch) -> None:
    store(3)
    monkeypatch.setattr(jobs, "JOB_SECONDS", -1.0)
    monkeypatch.setattr(jobs, "FIRST_BATCH", 2)
    queue = RecordingQueue()
    with topview():
        assert jobs.process_notices(queue) == 2  # one full batch, then time is up
    assert queue.drains == 1
    with topview():
        assert jobs.process_notices(queue) == 1
    assert queue.drains == 1  # the last batch was not full: nothing more was due


def test_batches_grow_while_notices_go_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    store(30)
    sizes: list[int] = []
    real = processing.process_due

    def watch(**kwargs: Any) -> processing.Batch:
        sizes.append(kwargs["limit"])
        return real(**kwargs)

    monkeypatch.setattr(processing, "process_due", watch)
    monkeypatch.setattr(jobs, "FIRST_BATCH", 2)
    with topview():
        assert jobs.process_notices(RecordingQueue()) == 30
    assert sizes[0] == 2 and max(sizes) > 2


def test_a_job_for_one_notice_attempts_that_notice_only(record_signal: Any) -> None:
    fired = record_signal()
    uuids = store(2)
    second = Notice.objects.get(uuid=uuids[1])
    with topview():
        assert jobs.process_notices(RecordingQueue(), second.pk) == 1
    assert [call["notice"].uuid for call in fired.calls] == [uuids[1]]


@pytest.mark.postgres
def test_workers_draining_at_once_fire_each_notice_once(record_signal: Any) -> None:
    fired = record_signal()
    uuids = store(30)
    results: list[int] = []

    def work() -> None:
        try:
            results.append(jobs.process_notices(RecordingQueue()))
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


# --- the web side: when a process asks for a drain ------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: now[0])
    return now


def test_a_window_gets_one_drain_now_and_one_at_its_end(clock: list[float]) -> None:
    window, published = jobs.DrainWindow(), []
    window.request(published.append)  # the first notice: a drain right away
    clock[0] += 0.02
    window.request(published.append)  # stored after that drain may have finished: one more
    clock[0] += 0.02
    window.request(published.append)  # covered by the one at the window's end
    clock[0] += jobs.DRAIN_WINDOW
    window.request(published.append)  # a new window
    assert published[0] is None and published[2] is None
    assert published[1] == pytest.approx(jobs.DRAIN_WINDOW - 0.02)
    assert len(published) == 3


def test_celery_asks_for_drains_not_a_message_per_notice(
    monkeypatch: pytest.MonkeyPatch, clock: list[float]
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        tasks.process_notices, "apply_async", lambda args=(), **options: sent.append(options)
    )
    monkeypatch.setattr(tasks, "_drain_window", jobs.DrainWindow())
    with topview(PROCESSING="celery"):
        for _ in range(3):
            assert deliver_notice(notice_payload()).status_code == 200
    assert [message["countdown"] for message in sent] == [None, pytest.approx(jobs.DRAIN_WINDOW)]
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PENDING}
