"""tasks_framework.py: PROCESSING="tasks" on Django's Tasks framework, in this process.

With the ImmediateBackend (the task runs on enqueue) and with django-tasks-db's
DatabaseBackend, whose worker (``db_worker --batch``) runs here until the queue is empty.
The same worker as a separate process on PostgreSQL: tests/test_tasks_worker.py.
"""

from __future__ import annotations

import ast
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from tests.support.archive import deliver_text2video, stored_files
from tests.support.media_server import MediaServer
from tests.support.settings import topview
from tests.support.without import run_without
from topview_callbacks import dispatch, jobs, processing, retrying, signals
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

tasks_framework = pytest.importorskip("topview_callbacks.tasks_framework")

PACKAGE = Path(tasks_framework.__file__).parent


def on_database(**values: Any) -> override_settings:
    """PROCESSING="tasks" on django-tasks-db's backend (tests/settings.py names it "database")."""
    pytest.importorskip("django_tasks_db")
    return topview(**{"PROCESSING": "tasks", "TASKS_BACKEND": "database", **values})


def queued() -> list[Any]:
    """The tasks django-tasks-db holds, oldest first."""
    from django_tasks_db.models import DBTaskResult

    return list(DBTaskResult.objects.order_by("enqueued_at"))


def run_worker() -> None:
    """django-tasks-db's worker, in this process, until no task is ready."""
    call_command(
        "db_worker",
        "--batch",
        "--backend=database",
        "--queue-name=*",
        "--interval=0",
        "--no-startup-delay",
        "--no-reload",
        stdout=io.StringIO(),
    )


def make_due(task: Any) -> None:
    """Let time pass for a deferred retry (it is due ``run_after``)."""
    type(task).objects.filter(pk=task.pk).update(run_after=timezone.now())


def deliver(capture: Any) -> Notice:
    payload = notice_payload("VOICE_CLONE")
    with capture(execute=True):
        assert deliver_notice(payload).status_code == 200
    return Notice.objects.get(uuid=payload["uuid"])


def fails_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    """``owner.name`` meets a dropped database connection on its first call."""
    real = getattr(owner, name)
    failures = iter([OperationalError("server closed the connection unexpectedly")])

    def flaky_database(*args: Any, **kwargs: Any) -> Any:
        for error in failures:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky_database)


def paths(tasks: list[Any]) -> list[str]:
    return [task.task_path.rsplit(".", 1)[1] for task in tasks]


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new drain window of a minute: this process asked for no drain yet."""
    monkeypatch.setattr(jobs, "DRAIN_WINDOW", 60.0)
    monkeypatch.setattr(tasks_framework, "_drain_window", jobs.DrainWindow())


def store(uuid: str) -> int:
    stored = processing.store(
        {"uuid": uuid, "biz_type": "VOICE_CLONE", "task_id": f"t-{uuid}", "status": "success"}
    ).notice
    assert stored is not None
    return int(stored.pk)


@pytest.fixture
def archiving_on(archive_settings: Any) -> dict[str, Any]:
    """conftest's ``archive_settings`` in tasks mode; returns its TOPVIEW_CALLBACKS."""
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "PROCESSING": "tasks",
    }
    return dict(archive_settings.TOPVIEW_CALLBACKS)


# --- the immediate backend ------------------------------------------------------------------


@pytest.mark.django_db
def test_immediate_backend_processes_after_commit(
    record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal(signals.voice_clone)
    with topview(PROCESSING="tasks"):
        notice = deliver(django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PROCESSED
    assert [call["notice"].pk for call in received.calls] == [notice.pk]
    assert dispatch.restart_for("tasks") == tasks_framework.enqueue_notice


@pytest.mark.django_db
def test_immediate_backend_leaves_a_failed_notice_to_the_sweep(
    failing_receiver: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    with topview(PROCESSING="tasks", MAX_ATTEMPTS=3):
        notice = deliver(django_capture_on_commit_callbacks)
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("failed", 1, 1)
    assert notice.next_attempt_at is not None
    assert "can't defer a task; the sweep runs it when due" in caplog.text
    failing_receiver.fixed = True
    Notice.objects.filter(pk=notice.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=5)
    )
    with (
        topview(PROCESSING="tasks", MAX_ATTEMPTS=3, SWEEP_AFTER=1),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert tasks_framework.enqueue(tasks_framework.sweep).return_value == 1
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("processed", 2, 2)


@pytest.mark.django_db
def test_reconcile_and_prune_run_as_tasks() -> None:
    with topview(PROCESSING="tasks"):
        pruned = tasks_framework.enqueue(tasks_framework.prune)
        reconciled = tasks_framework.enqueue(tasks_framework.reconcile)
    assert pruned.status == "SUCCESSFUL" and set(pruned.return_value) >= {"notices"}
    assert reconciled.status == "SUCCESSFUL" and isinstance(reconciled.return_value, dict)


@pytest.mark.django_db
def test_immediate_backend_archives_a_success_and_the_sweep_retries_a_download(
    server: MediaServer,
    archiving_on: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert dispatch.archive_queue_for("tasks") == tasks_framework.enqueue_media
    with django_capture_on_commit_callbacks(execute=True):
        notice = deliver_text2video(f"{server.url}/flaky/a.mp4", task_id="tasks-1")
    media = ArchivedMedia.objects.get()
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED
    # The 503: no deferred retry on this backend, the row says when it is due.
    assert (media.state, media.attempts) == (MediaState.PENDING, 1)
    assert media.next_attempt_at is not None
    assert "can't defer a task; the sweep runs it when due" in caplog.text
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks_framework.enqueue(tasks_framework.sweep).return_value == 1
    media.refresh_from_db()
    assert (media.state, media.attempts) == (MediaState.ARCHIVED, 2)
    assert len(stored_files(tmp_path)) == 1


# --- the database backend, its worker in this process ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_database_backend_queues_a_drain_on_the_configured_queue_and_its_worker_runs_it(
    record_signal: Any, window: None, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal()
    with on_database(TASKS_QUEUE="topview"):
        notice = deliver(django_capture_on_commit_callbacks)
        [task] = queued()
        assert notice.state == NoticeState.PENDING  # nothing ran in the web process
        assert (task.task_path, task.queue_name, task.backend_name) == (
            "topview_callbacks.tasks_framework.process_notices",
            "topview",
            "database",
        )
        assert task.args_kwargs == {"args": [], "kwargs": {}}  # a drain: the rows say what
        run_worker()
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED
    assert [call["notice"].pk for call in received.calls] == [notice.pk]
    [task] = queued()
    assert task.status == "SUCCESSFUL" and task.return_value == 1
    # A repeated task for a processed notice does nothing.
    with on_database():
        tasks_framework.enqueue_notice(notice.pk)
        run_worker()
    assert len(received.calls) == 1


@pytest.mark.django_db(transaction=True)
def test_a_raising_receiver_is_retried_with_backoff_then_given_up(
    failing_receiver: Any,
    caplog: pytest.LogCaptureFixture,
    window: None,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    monkeypatch.setattr(retrying.random, "uniform", lambda low, high: high)
    with on_database(MAX_ATTEMPTS=3, RETRY_BACKOFF=10):
        notice = deliver(django_capture_on_commit_callbacks)
        waits = []
        for _attempt in range(3):
            before = timezone.now()
            run_worker()
            latest = queued()[-1]
            if latest.status == "READY":
                waits.append((latest.run_after - before).total_seconds())
                make_due(latest)
                Notice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("failed", 3, 3)
    assert len(queued()) == 3  # the first attempt and two retries; no fourth
    assert [round(wait) for wait in waits] == [10, 20]  # RETRY_BACKOFF, doubled
    assert "failed 3 times; giving up" in caplog.text
    failing_receiver.fixed = True
    replayed = processing.replay_notice(notice.pk)
    assert replayed is not None and replayed.state == NoticeState.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_a_retry_that_succeeds_fires_once(
    failing_receiver: Any,
    record_signal: Any,
    window: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    received = record_signal()
    with on_database(MAX_ATTEMPTS=3, RETRY_BACKOFF=5):
        notice = deliver(django_capture_on_commit_callbacks)
        run_worker()
        failing_receiver.fixed = True
        make_due(queued()[-1])
        Notice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
        run_worker()
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("processed", 2, 2)
    assert len(received.calls) == 1  # the recorder fires only once the receivers all passed


@pytest.mark.django_db(transaction=True)
def test_a_database_error_is_retried_with_its_own_count(monkeypatch: pytest.MonkeyPatch) -> None:
    fails_once(monkeypatch, processing, "process_due")
    notice_id = store("db-1")
    with on_database(RETRY_BACKOFF=1):
        tasks_framework.enqueue_notice(notice_id)
        run_worker()
        retry = queued()[-1]
        assert retry.args_kwargs["args"] == [notice_id, 1]
        make_due(retry)
        run_worker()
    assert Notice.objects.get(pk=notice_id).state == NoticeState.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_sweep_command_enqueues_as_tasks_in_tasks_mode() -> None:
    notice_id = store("stuck-1")
    Notice.objects.filter(pk=notice_id).update(received_at=timezone.now() - timedelta(hours=1))
    out = io.StringIO()
    with on_database():
        call_command("topview_sweep", "--enqueue", stdout=out)
        assert [task.args_kwargs["args"] for task in queued()] == [[notice_id]]
        run_worker()
    assert "Queued 1 stuck notice(s)." in out.getvalue()
    assert Notice.objects.get(pk=notice_id).state == NoticeState.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_the_notice_job_queues_a_download_per_file_retried_with_backoff(
    server: MediaServer, archiving_on: dict[str, Any], tmp_path: Path, window: None
) -> None:
    with on_database(**archiving_on):
        notice = deliver_text2video(f"{server.url}/flaky/b.mp4", task_id="tasks-2")
        run_worker()  # the notices, its download (503), the download's retry (due at once)
    media = ArchivedMedia.objects.get()
    assert Notice.objects.get(pk=notice.pk).state == NoticeState.PROCESSED
    assert (media.state, media.attempts) == (MediaState.ARCHIVED, 2)
    tasks = queued()
    assert paths(tasks) == ["process_notices", "archive_media", "archive_media"]
    assert [task.args_kwargs["args"] for task in tasks[1:]] == [[media.pk], [media.pk]]
    assert [task.return_value for task in tasks[1:]] == ["pending", "archived"]
    assert len(stored_files(tmp_path)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_window_of_notices_gets_one_drain_now_and_one_at_its_end(
    record_signal: Any, window: None, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal()
    with on_database():
        notices = [deliver(django_capture_on_commit_callbacks) for _ in range(3)]
        now, trailing = queued()
        assert paths([now, trailing]) == ["process_notices", "process_notices"]
        assert (trailing.run_after - timezone.now()).total_seconds() > 50
        run_worker()  # the first drain takes all three; the other is not due
        assert (now.__class__.objects.get(pk=now.pk).return_value, trailing.status) == (3, "READY")
        make_due(trailing)
        run_worker()
    assert [call["notice"].pk for call in received.calls] == [notice.pk for notice in notices]
    assert [task.return_value for task in queued()] == [3, 0]
    assert set(Notice.objects.values_list("state", "attempts")) == {(NoticeState.PROCESSED, 1)}


@pytest.mark.django_db
def test_a_backend_that_refuses_the_task_leaves_the_notice_pending(
    caplog: pytest.LogCaptureFixture, window: None, django_capture_on_commit_callbacks: Any
) -> None:
    # The immediate backend serves "default" only.
    with topview(PROCESSING="tasks", TASKS_QUEUE="not-served"):
        notice = deliver(django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PENDING
    assert "the sweep finds it later" in caplog.text


# --- packaging ----------------------------------------------------------------------------


def test_only_tasks_framework_imports_the_tasks_framework() -> None:
    """What import-linter can't say (django.tasks is a subpackage of an external package)."""
    importers = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            if any(name.split(".")[:2] == ["django", "tasks"] for name in names) or any(
                name.split(".")[0] in ("django_tasks", "django_tasks_db") for name in names
            ):
                importers.add(path.relative_to(PACKAGE).as_posix())
    assert importers == {"tasks_framework.py"}


def test_the_package_works_without_the_tasks_framework_installed() -> None:
    out = run_without(
        ("django.tasks", "django_tasks", "django_tasks_db"),
        """
        import topview_callbacks.admin, topview_callbacks.dispatch, topview_callbacks.views
        from django.core.management import call_command
        call_command("check")
        assert not [name for name in sys.modules if name.startswith("django_tasks")]
        assert "django.tasks" not in sys.modules
        print("ok")
        """,
    )
    assert out.strip().endswith("ok")
