"""tasks.py in-process: the retry policy, enqueueing on commit, the sweep, the periodic tasks.

The same tasks against a real worker and Redis: tests/test_celery_worker.py.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from kombu.exceptions import OperationalError

from tests.support.settings import topview
from tests.support.without import run_without
from topview_callbacks import dispatch, jobs, sending, signals, sweeping, tasks
from topview_callbacks.client import Submission, TopviewClient
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

pytestmark = pytest.mark.django_db


def store(**payload: Any) -> Notice:
    """A stored, pending notice (PROCESSING='manual' only stores)."""
    body = notice_payload(**payload)
    with topview(PROCESSING="manual"):
        assert deliver_notice(body).status_code == 200
    return Notice.objects.get(uuid=body["uuid"])


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """``process_notices`` messages the code would send to the broker (args, options),
    instead of sending them."""
    sent: list[tuple[Any, dict[str, Any]]] = []

    def apply_async(args: Any = (), kwargs: Any = None, **options: Any) -> None:
        sent.append((tuple(args), {"kwargs": kwargs, **options}))

    monkeypatch.setattr(tasks.process_notices, "apply_async", apply_async)
    monkeypatch.setattr(tasks, "_drain_window", jobs.DrainWindow())
    return sent


class Flaky:
    """A receiver that raises its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"receiver failure {self.calls}")


@pytest.fixture
def flaky() -> Any:
    receivers: list[Flaky] = []

    def connect(failures: int) -> Flaky:
        receiver = Flaky(failures)
        signals.task_outcome.connect(receiver, weak=False)
        receivers.append(receiver)
        return receiver

    yield connect
    for receiver in receivers:
        signals.task_outcome.disconnect(receiver)


# --- enqueueing -----------------------------------------------------------------------------


def test_celery_mode_acknowledges_then_asks_for_a_drain_on_commit(
    published: list[Any], django_capture_on_commit_callbacks: Any, record_signal: Any
) -> None:
    received = record_signal()
    body = notice_payload("VOICE_CLONE")
    with topview(PROCESSING="celery"), django_capture_on_commit_callbacks(execute=True):
        response = deliver_notice(body)
    assert response.status_code == 200
    notice = Notice.objects.get(uuid=body["uuid"])
    assert [args for args, _ in published] == [()]  # a drain: no id, the rows are the truth
    assert published[0][1]["countdown"] is None
    assert notice.state == NoticeState.PENDING
    assert received.calls == []  # nothing runs in the web process


def test_a_duplicate_delivery_of_a_processed_notice_queues_nothing(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    body = notice_payload()
    with topview(PROCESSING="celery"), django_capture_on_commit_callbacks(execute=True):
        deliver_notice(body)
        Notice.objects.update(state=NoticeState.PROCESSED)  # the worker did its job
        deliver_notice(body)
    assert len(published) == 1


def test_a_redelivery_of_a_notice_still_pending_queues_it_again(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    # Its drain may be lost (broker down); a second message is harmless: an attempt holds
    # a notice's row lock, so one of them runs it.
    body = notice_payload()
    with topview(PROCESSING="celery"), django_capture_on_commit_callbacks(execute=True):
        deliver_notice(body)
        deliver_notice(body)
    notice = Notice.objects.get()
    assert [args for args, _ in published] == [(), (notice.pk,)]


def test_enqueue_waits_for_the_commit(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    notice = store()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.enqueue_notice(notice.pk, delay=7.0)
    assert published == []
    callbacks[0]()
    assert [(args, options["countdown"]) for args, options in published] == [((notice.pk,), 7.0)]


def test_broker_down_leaves_the_notice_pending_for_the_sweep(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(tasks.process_notices, "apply_async", down)
    notice = store()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.enqueue_notice(notice.pk)  # must not raise
    notice.refresh_from_db()
    assert notice.state == NoticeState.PENDING
    assert "the sweep queues it later" in caplog.text


# --- the job --------------------------------------------------------------------------------


def test_the_job_drains_once_and_logs_structured_fields(
    record_signal: Any, caplog: pytest.LogCaptureFixture
) -> None:
    received = record_signal(signals.voice_clone)
    notice = store(biz_type="VOICE_CLONE")
    caplog.set_level(logging.INFO, logger="topview_callbacks")
    assert tasks.process_notices.apply(task_id="celery-task-1").get() == 1
    assert tasks.process_notices.apply((notice.pk,)).get() == 0  # redelivered: nothing due
    assert len(received.calls) == 1
    record = next(r for r in caplog.records if r.name == "topview_callbacks.jobs")
    assert record.topview_notice_uuid == notice.uuid  # type: ignore[attr-defined]
    assert record.topview_biz_type == "VOICE_CLONE"  # type: ignore[attr-defined]
    assert record.topview_task_id == notice.task_id  # type: ignore[attr-defined]
    assert record.topview_account == "default"  # type: ignore[attr-defined]
    assert notice.uuid in record.getMessage() and "processed" in record.getMessage()


def test_a_raising_receiver_is_retried_by_a_delayed_message_then_succeeds(
    flaky: Any, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    receiver = flaky(failures=2)
    notice = store()

    def run(*args: Any) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.process_notices.apply(args)

    with topview(MAX_ATTEMPTS=5, RETRY_BACKOFF=4.0):
        run()
        for expected_delay in (4.0, 8.0):  # the backoff doubles
            (args, options) = published.pop()
            assert args == (notice.pk,)
            assert expected_delay / 2 <= options["countdown"] <= expected_delay
            Notice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
            run(*args)  # the retry comes
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, receiver.calls) == (NoticeState.PROCESSED, 3, 3)
    assert published == []


def test_after_max_attempts_the_notice_stays_failed_and_replay_runs_it_again(
    flaky: Any,
    caplog: pytest.LogCaptureFixture,
    record_signal: Any,
    published: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver = flaky(failures=3)
    failed = record_signal(signals.notice_processing_failed)
    notice = store()
    with topview(MAX_ATTEMPTS=3, RETRY_BACKOFF=0.01):
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                tasks.process_notices.apply((notice.pk,))
            Notice.objects.filter(pk=notice.pk, next_attempt_at__isnull=False).update(
                next_attempt_at=timezone.now()
            )
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, receiver.calls) == (NoticeState.FAILED, 3, 3)
    assert notice.next_attempt_at is None
    assert "receiver failure 3" in notice.last_error
    assert len(failed.calls) == 3
    assert "failed 3 times; giving up" in caplog.text
    assert len(published) == 2  # two retries; none after the last attempt
    # A stray (redelivered) message does not run a notice out of attempts again...
    with topview(MAX_ATTEMPTS=3):
        assert tasks.process_notices.apply((notice.pk,)).get() == 0
    assert receiver.calls == 3
    # ...an operator's replay does.
    replayed = dispatch.replay(notice.pk)
    assert replayed is not None and replayed.state == NoticeState.PROCESSED
    assert receiver.calls == 4


# --- sweep ----------------------------------------------------------------------------------


def _age(notice: Notice, seconds: float, **values: Any) -> None:
    when = timezone.now() - timedelta(seconds=seconds)
    Notice.objects.filter(pk=notice.pk).update(received_at=when, **values)


def test_sweep_restarts_what_nothing_has_worked_on_for_sweep_after() -> None:
    old, new, dead, busy, done, retry_lost, retry_soon = (store() for _ in range(7))
    ago = timezone.now() - timedelta(seconds=800)
    _age(old, 600)
    _age(new, 10)
    _age(dead, 900, attempts=1, claim="dead", claimed_at=ago)  # its process died
    _age(busy, 900, attempts=1, claim="busy", claimed_at=timezone.now())  # just started
    _age(done, 900, state=NoticeState.PROCESSED)
    _age(retry_lost, 2000, state=NoticeState.FAILED, attempts=1, next_attempt_at=ago)
    _age(retry_soon, 2000, state=NoticeState.FAILED, attempts=1, next_attempt_at=timezone.now())
    restarted: list[int] = []
    with topview(SWEEP_AFTER=300):
        assert sweeping.restart_stuck(restart=restarted.append) == 3
    assert sorted(restarted) == sorted([old.pk, dead.pk, retry_lost.pk])


def test_sweep_by_default_processes_every_due_notice_here(record_signal: Any) -> None:
    received = record_signal()
    notices = [store(), store()]
    _age(notices[0], 600)
    with topview(SWEEP_AFTER=300):
        assert sweeping.restart_stuck() == 2
    assert {n.state for n in Notice.objects.all()} == {NoticeState.PROCESSED}
    assert len(received.calls) == 2


def test_sweep_task_queues_stuck_notices(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    notice = store()
    _age(notice, 600)
    with topview(SWEEP_AFTER=300), django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep.apply().get() == 1
    assert [args for args, _ in published] == [(notice.pk,)]


def test_sweep_command(published: list[Any], django_capture_on_commit_callbacks: Any) -> None:
    notice = store()
    _age(notice, 100)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("topview_sweep", "--older-than", "50", "--enqueue", stdout=io.StringIO())
    assert [args for args, _ in published] == [(notice.pk,)]
    out = io.StringIO()
    call_command("topview_sweep", stdout=out)
    assert "Processed 1 notice(s)" in out.getvalue()
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED


# --- periodic wrappers ----------------------------------------------------------------------


def test_reconcile_task_runs_the_real_reconcile_and_returns_plain_data() -> None:
    report = tasks.reconcile.apply().get()
    assert report == {
        "polled": 0,
        "delivered": 0,
        "unfinished": 0,
        "errors": 0,
        "expired": 0,
        "misconfigured": 0,
    }


def test_prune_task_reports_counts() -> None:
    notice = store()
    _age(notice, 100 * 86400, state=NoticeState.PROCESSED)
    assert tasks.prune.apply().get() == {
        "notices": 1,
        "failed_notices": 0,
        "tasks": 0,
        "rejections": 0,
        "files": 0,
        "kept_for_files": 0,
    }


def test_the_tasks_carry_their_own_time_limits() -> None:
    # A host's task_time_limit (cookiecutter-django: 60 s soft, 300 s hard) must not kill a
    # slow receiver or a big download halfway.
    assert tasks.process_notices.time_limit == tasks.NOTICE_TIME_LIMIT >= 1800
    assert tasks.process_notices.soft_time_limit == tasks.NOTICE_TIME_LIMIT - 60
    assert tasks.archive_media.time_limit == tasks.MEDIA_TIME_LIMIT >= 3600
    assert tasks.archive_media.soft_time_limit == tasks.MEDIA_TIME_LIMIT - 60


def test_a_download_job_gets_time_for_the_deadline_its_settings_allow(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        tasks.archive_media, "apply_async", lambda args, **options: sent.append(options)
    )
    with (
        topview(ARCHIVE_DEADLINE=3 * 3600, REQUEST_TIMEOUT=20),
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.enqueue_media(7)
    # Three hours of download, five timeouts for the confirming query, a minute to spare:
    # the decorator's two hours would have killed it.
    [options] = sent
    assert options["time_limit"] == 3 * 3600 + 5 * 20 + 60
    assert options["soft_time_limit"] == options["time_limit"] - 30


# --- lifecycle signals ----------------------------------------------------------------------


def test_notice_stored_and_task_status_changed_signals(
    record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    stored = record_signal(signals.notice_stored)
    changed = record_signal(signals.task_status_changed)
    body = notice_payload("M2V_EXPORT", status="fail")
    with topview(PROCESSING="inline"), django_capture_on_commit_callbacks(execute=True):
        deliver_notice(body)
    assert [call["notice"].uuid for call in stored.calls] == [body["uuid"]]
    assert len(changed.calls) == 1
    call = changed.calls[0]
    assert call["sender"] is SubmittedTask
    assert (call["old_status"], call["new_status"]) == (TaskStatus.RUNNING, TaskStatus.FAIL)
    assert call["task"].task_id == body["taskId"] and call["notice"].uuid == body["uuid"]


def test_a_failing_lifecycle_receiver_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture, record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise ValueError("metrics backend down")

    signals.notice_stored.connect(broken)
    received = record_signal()
    try:
        body = notice_payload()
        with topview(PROCESSING="inline"), django_capture_on_commit_callbacks(execute=True):
            assert deliver_notice(body).status_code == 200
    finally:
        signals.notice_stored.disconnect(broken)
    assert Notice.objects.get(uuid=body["uuid"]).state == NoticeState.PROCESSED
    assert len(received.calls) == 1
    assert "metrics backend down" in caplog.text


# --- packaging ----------------------------------------------------------------------------


def test_the_package_works_without_celery_installed() -> None:
    out = run_without(
        ("celery",),
        """
        import topview_callbacks.admin, topview_callbacks.processing, topview_callbacks.views
        from django.core.management import call_command
        call_command("check")
        assert "celery" not in sys.modules
        print("ok")
        """,
    )
    assert out.strip().endswith("ok")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_in_a_worker_the_task_keeps_its_connection_for_conn_max_age() -> None:
    """Outside a request, nothing else applies CONN_MAX_AGE: the task does, as a request would.

    (Celery itself closes the connection after every task unless CELERY_DB_REUSE_MAX is set.)
    """
    import time

    from django.db import OperationalError as DatabaseError
    from django.db import connection

    task = tasks.process_notices

    def run_as_a_worker_does(notice: Notice) -> Any:
        task.push_request(id="t", called_directly=False)
        try:
            return task.run(notice.pk)
        finally:
            task.pop_request()

    first, second, third, fourth, fifth = store(), store(), store(), store(), store()
    # A fresh connection: one kept from an earlier test may have been ended by it (a
    # restart test terminates the database's other backends), and the task would rightly
    # replace that one.
    connection.close()
    connection.ensure_connection()
    kept = connection.connection
    assert run_as_a_worker_does(first) == 1
    assert connection.connection is kept  # reused, not reopened
    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE has run out
    assert run_as_a_worker_does(second) == 1
    assert connection.connection is not None and connection.connection is not kept
    # A connection that failed and no longer works is dropped, not reused by the next task.
    broken = connection.connection
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # as in a restart
    assert run_as_a_worker_does(third) == 1
    assert connection.connection is not broken

    # CONN_MAX_AGE running out while the task runs: closed when it ends, not kept idle.
    def age_out(**kwargs: Any) -> None:
        connection.close_at = time.monotonic() - 1

    signals.task_outcome.connect(age_out, dispatch_uid="age-out")
    try:
        assert run_as_a_worker_does(fifth) == 1
    finally:
        signals.task_outcome.disconnect(dispatch_uid="age-out")
    assert connection.connection is None
    # Called directly (not by a worker), it leaves the caller's connection alone.
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1
    current = connection.connection
    assert task.run(fourth.pk) == 1
    assert connection.connection is current


# --- sending queued submissions -------------------------------------------------------------


def test_celery_mode_publishes_a_send_after_the_enqueue_commits(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[tuple[Any, dict[str, Any]]] = []

    def apply_async(args: Any = (), kwargs: Any = None, **options: Any) -> None:
        sent.append((tuple(args), options))

    monkeypatch.setattr(tasks.send_queued, "apply_async", apply_async)
    monkeypatch.setattr(jobs, "_sending_windows", {})
    with topview(PROCESSING="celery"), django_capture_on_commit_callbacks(execute=True):
        for n in range(50):
            TopviewClient().enqueue("COMMON_TASK_TEXT2IMAGE", prompt=str(n))
        assert sent == []  # nothing before the commit
    # Fifty enqueues committed together: one job now, one at the window's end.
    assert [args for args, _ in sent] == [("default",), ("default",)]
    assert sent[0][1]["countdown"] is None and 0 < sent[1][1]["countdown"] <= jobs.DRAIN_WINDOW


def test_the_send_job_sends_and_schedules_the_end_of_a_backoff(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    sent: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(
        tasks.send_queued,
        "apply_async",
        lambda args=(), kwargs=None, **options: sent.append((tuple(args), options)),
    )
    with topview(PROCESSING="celery"), mock_topview() as fake:
        TopviewClient().enqueue_many(
            "COMMON_TASK_TEXT2IMAGE", [Submission({"prompt": str(i)}) for i in range(2)]
        )
        fake.max_unfinished = 1
        with django_capture_on_commit_callbacks(execute=True):
            report = tasks.send_queued.apply(("default",)).get()
    assert (report["sent"], report["busy"]) == (1, 1)
    ((args, options),) = sent
    assert args == ("default",) and 0 < options["countdown"] <= sending.BACKOFF_SECONDS
