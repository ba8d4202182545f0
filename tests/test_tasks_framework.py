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
from django.db import OperationalError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import run_without
from tests.media_server import MediaServer
from tests.test_archiving import stored_files
from tests.test_archiving_integration import deliver_text2video
from topview_callbacks import batching, processing, scheduling, signals
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

tasks_framework = pytest.importorskip("topview_callbacks.tasks_framework")

BASE = {"UID": "test-uid-NsDAaOPF4jLu", "API_KEY": "sk-test-key", "PROCESSING": "tasks"}
PACKAGE = Path(tasks_framework.__file__).parent


def topview(**values: Any) -> Any:
    return override_settings(TOPVIEW_CALLBACKS={**BASE, **values})


def on_database(**values: Any) -> Any:
    """django-tasks-db's backend (tests/settings.py names it "database")."""
    pytest.importorskip("django_tasks_db")
    return topview(TASKS_BACKEND="database", **values)


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
    """A new BATCH_WINDOW: this process asked for no drain yet."""
    monkeypatch.setattr(tasks_framework, "_drain_window", batching.DrainWindow())


@pytest.fixture
def archiving_on(archive_settings: Any) -> dict[str, Any]:
    """conftest's ``archive_settings`` in tasks mode; returns its TOPVIEW_CALLBACKS."""
    archive_settings.TOPVIEW_CALLBACKS = {**archive_settings.TOPVIEW_CALLBACKS, **BASE}
    return dict(archive_settings.TOPVIEW_CALLBACKS)


# --- the immediate backend ------------------------------------------------------------------


@pytest.mark.django_db
def test_immediate_backend_processes_after_commit(
    record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal(signals.voice_clone)
    with topview():
        notice = deliver(django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PROCESSED
    assert [call["notice"].pk for call in received.calls] == [notice.pk]
    assert scheduling.queue_for("tasks") is tasks_framework.enqueue_new_notice


@pytest.mark.django_db
def test_immediate_backend_leaves_a_failed_notice_to_the_sweep(
    failing_receiver: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    with topview(MAX_ATTEMPTS=3):
        notice = deliver(django_capture_on_commit_callbacks)
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("failed", 1, 1)
    assert "can't defer a task; the sweep retries it" in caplog.text
    failing_receiver.fixed = True
    Notice.objects.filter(pk=notice.pk).update(
        processing_started_at=timezone.now() - timedelta(seconds=5)
    )
    sweep_soon = topview(MAX_ATTEMPTS=3, SWEEP_AFTER=1, RETRY_BACKOFF_MAX=1)
    with sweep_soon, django_capture_on_commit_callbacks(execute=True):
        assert tasks_framework.enqueue(tasks_framework.sweep).return_value == 1
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("processed", 2, 2)


@pytest.mark.django_db
def test_reconcile_and_prune_run_as_tasks() -> None:
    with topview():
        pruned = tasks_framework.enqueue(tasks_framework.prune)
        reconciled = tasks_framework.enqueue(tasks_framework.reconcile)
    assert pruned.status == "SUCCESSFUL" and set(pruned.return_value) >= {"notices"}
    assert reconciled.status == "SUCCESSFUL" and isinstance(reconciled.return_value, dict)


@pytest.mark.django_db
def test_immediate_backend_ignores_batch_size(
    record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal()
    with topview(BATCH_SIZE=50):  # a task runs where it is enqueued: nothing to batch
        notice = deliver(django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PROCESSED
    assert [call["notice"].pk for call in received.calls] == [notice.pk]


@pytest.mark.django_db
def test_immediate_backend_archives_a_success_and_the_sweep_retries_a_download(
    server: MediaServer,
    archiving_on: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert scheduling.archive_queue_for("tasks") is tasks_framework.enqueue_media
    with django_capture_on_commit_callbacks(execute=True):
        notice = deliver_text2video(f"{server.url}/flaky/a.mp4", task_id="tasks-1")
    media = ArchivedMedia.objects.get()
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED
    # The 503: no deferred retry on this backend, the row says when it is due.
    assert (media.state, media.attempts) == (MediaState.PENDING, 1)
    assert media.next_attempt_at is not None
    assert "can't defer a task; the sweep retries it when due" in caplog.text
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks_framework.enqueue(tasks_framework.sweep).return_value == 1
    media.refresh_from_db()
    assert (media.state, media.attempts) == (MediaState.ARCHIVED, 2)
    assert len(stored_files(tmp_path)) == 1


# --- the database backend, its worker in this process ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_database_backend_queues_the_id_on_the_configured_queue_and_its_worker_runs_it(
    record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal()
    with on_database(TASKS_QUEUE="topview"):
        notice = deliver(django_capture_on_commit_callbacks)
        [task] = queued()
        assert notice.state == NoticeState.PENDING  # nothing ran in the web process
        assert (task.task_path, task.queue_name, task.backend_name) == (
            "topview_callbacks.tasks_framework.process_notice",
            "topview",
            "database",
        )
        assert task.args_kwargs == {"args": [notice.pk, 0], "kwargs": {}}
        run_worker()
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED
    assert [call["notice"].pk for call in received.calls] == [notice.pk]
    [task] = queued()
    assert task.status == "SUCCESSFUL" and task.return_value == "processed"
    # A repeated task for a processed notice does nothing.
    with on_database():
        tasks_framework.enqueue_notice(notice.pk)
        run_worker()
    assert len(received.calls) == 1


@pytest.mark.django_db(transaction=True)
def test_a_raising_receiver_is_retried_with_backoff_then_given_up(
    failing_receiver: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    settings = on_database(MAX_ATTEMPTS=3, RETRY_BACKOFF=10, RETRY_JITTER=False)
    with settings:
        notice = deliver(django_capture_on_commit_callbacks)
        waits = []
        for _attempt in range(3):
            before = timezone.now()
            run_worker()
            latest = queued()[-1]
            if latest.status == "READY":
                waits.append((latest.run_after - before).total_seconds())
                make_due(latest)
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
    failing_receiver: Any, record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal()
    with on_database(MAX_ATTEMPTS=3, RETRY_BACKOFF=5):
        notice = deliver(django_capture_on_commit_callbacks)
        run_worker()
        failing_receiver.fixed = True
        make_due(queued()[-1])
        run_worker()
    notice.refresh_from_db()
    assert (notice.state, notice.attempts, failing_receiver.calls) == ("processed", 2, 2)
    assert len(received.calls) == 1  # the recorder fires only once the receivers all passed


@pytest.mark.django_db(transaction=True)
def test_a_database_error_is_retried_with_its_own_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fails_once(monkeypatch, processing, "process_notice")
    notice = Notice.objects.record_delivery(
        uuid="db-1", biz_type="VOICE_CLONE", task_id="t-db-1", status="success"
    )
    with on_database(RETRY_BACKOFF=1):
        tasks_framework.enqueue_notice(notice.notice_id)
        run_worker()
        retry = queued()[-1]
        assert retry.args_kwargs["args"] == [notice.notice_id, 1]
        make_due(retry)
        run_worker()
    assert Notice.objects.get(pk=notice.notice_id).state == NoticeState.PROCESSED
    assert "Database error processing Topview notice" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_sweep_command_enqueues_as_tasks_in_tasks_mode() -> None:
    notice = Notice.objects.record_delivery(
        uuid="stuck-1", biz_type="VOICE_CLONE", task_id="t-stuck-1", status="success"
    )
    Notice.objects.filter(pk=notice.notice_id).update(
        received_at=timezone.now() - timedelta(hours=1)
    )
    out = io.StringIO()
    with on_database():
        call_command("topview_sweep", "--enqueue", stdout=out)
        assert [task.args_kwargs["args"] for task in queued()] == [[notice.notice_id, 0]]
        run_worker()
    assert "Queued 1 stuck notice(s)." in out.getvalue()
    assert Notice.objects.get(pk=notice.notice_id).state == NoticeState.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_the_notice_task_queues_a_download_per_file_retried_with_backoff(
    server: MediaServer, archiving_on: dict[str, Any], tmp_path: Path
) -> None:
    with on_database(**archiving_on):
        notice = deliver_text2video(f"{server.url}/flaky/b.mp4", task_id="tasks-2")
        run_worker()  # the notice, its download (503), the download's retry (due at once)
    media = ArchivedMedia.objects.get()
    assert Notice.objects.get(pk=notice.pk).state == NoticeState.PROCESSED
    assert (media.state, media.attempts) == (MediaState.ARCHIVED, 2)
    tasks = queued()
    assert paths(tasks) == ["process_notice", "archive_media", "archive_media"]
    assert [task.args_kwargs["args"] for task in tasks[1:]] == [[media.pk], [media.pk]]
    assert [task.return_value for task in tasks[1:]] == ["pending", "archived"]
    assert len(stored_files(tmp_path)) == 1


@pytest.mark.django_db(transaction=True)
def test_with_batches_a_window_of_notices_gets_one_drain_now_and_one_at_its_end(
    record_signal: Any, window: None, django_capture_on_commit_callbacks: Any
) -> None:
    received = record_signal()
    with on_database(BATCH_SIZE=50, BATCH_WINDOW=60):
        notices = [deliver(django_capture_on_commit_callbacks) for _ in range(3)]
        now, trailing = queued()
        assert paths([now, trailing]) == ["drain", "drain"]
        assert (trailing.run_after - timezone.now()).total_seconds() > 50
        run_worker()  # the first drain takes all three; the other is not due
        assert (now.__class__.objects.get(pk=now.pk).return_value, trailing.status) == (3, "READY")
        make_due(trailing)
        run_worker()
    assert [call["notice"].pk for call in received.calls] == [notice.pk for notice in notices]
    assert [task.return_value for task in queued()] == [3, 0]
    assert set(Notice.objects.values_list("state", "attempts")) == {(NoticeState.PROCESSED, 1)}


@pytest.mark.django_db(transaction=True)
def test_a_drain_retries_failures_alone_and_asks_for_more_when_full(
    failing_receiver: Any,
) -> None:
    for number in range(3):
        Notice.objects.record_delivery(
            uuid=f"b-{number}", biz_type="VOICE_CLONE", task_id=f"t-b-{number}", status="success"
        )
    with on_database(BATCH_SIZE=2, MAX_ATTEMPTS=2, RETRY_BACKOFF=10, RETRY_JITTER=False):
        tasks_framework.enqueue(tasks_framework.drain)
        before = timezone.now()
        run_worker()  # a full drain (2), the next one it asked for (1)
        tasks = queued()
        assert sorted(paths(tasks)) == ["drain", "drain", *["process_notice"] * 3]
        drains = [task for task in tasks if task.task_path.endswith(".drain")]
        assert [task.return_value for task in drains] == [2, 1]
        retries = [task for task in tasks if task.status == "READY"]
        assert sorted(task.args_kwargs["args"][0] for task in retries) == sorted(
            Notice.objects.values_list("pk", flat=True)
        )
        assert {round((t.run_after - before).total_seconds()) for t in retries} == {10}
        failing_receiver.fixed = True
        for task in retries:
            make_due(task)
        run_worker()
    assert set(Notice.objects.values_list("state", "attempts")) == {(NoticeState.PROCESSED, 2)}
    assert failing_receiver.calls == 6


@pytest.mark.django_db(transaction=True)
def test_a_drain_meeting_a_database_error_is_retried_with_its_own_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fails_once(monkeypatch, batching, "drain")
    Notice.objects.record_delivery(
        uuid="db-2", biz_type="VOICE_CLONE", task_id="t-db-2", status="success"
    )
    with on_database(BATCH_SIZE=10, RETRY_BACKOFF=1):
        tasks_framework.enqueue(tasks_framework.drain)
        run_worker()
        retry = queued()[-1]
        assert (paths([retry]), retry.args_kwargs["args"]) == (["drain"], [1])
        make_due(retry)
        run_worker()
    assert Notice.objects.get(uuid="db-2").state == NoticeState.PROCESSED
    assert "Database error processing Topview notice" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("batch_size", [1, 50])
def test_statements_per_notice_on_postgres(batch_size: int, window: None) -> None:
    """Ours (the notice's) and django-tasks-db's (the task row's), web side and worker."""

    def statements(action: Any) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            action()
        return [query["sql"].split()[0] for query in queries.captured_queries]

    with on_database(BATCH_SIZE=batch_size, BATCH_WINDOW=60):
        web = [statements(lambda: deliver_notice(notice_payload())) for _ in range(4)]
        worker = statements(run_worker)
    # django-tasks-db, per task: take it (a transaction: the SELECT ... FOR UPDATE SKIP
    # LOCKED, the UPDATE to RUNNING), then the UPDATE with its result; and the last look
    # that finds no task ready.
    per_task = ["BEGIN", "SELECT", "UPDATE", "COMMIT"], ["UPDATE"]
    idle = ["BEGIN", "SELECT", "COMMIT"]
    if batch_size == 1:
        # Web: the notice's INSERT, the task's INSERT. Worker: claim + record + link in one
        # statement ("WITH"), then the processed mark.
        assert web == [["INSERT", "INSERT"]] * 4
        assert worker == [*per_task[0], "WITH", "UPDATE", *per_task[1]] * 4 + idle
    else:
        # One drain now, one due at the window's end (not run here): INSERTs for the first
        # two notices only. The drain: 1 per notice (its claim also writes the previous
        # notice's processed mark) and the claim that finds none left (and marks the last).
        assert web == [["INSERT", "INSERT"]] * 2 + [["INSERT"]] * 2
        assert worker == [*per_task[0], *["WITH"] * 4, "WITH", *per_task[1], *idle]


@pytest.mark.django_db
def test_a_backend_that_refuses_the_task_leaves_the_notice_pending(
    caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    with topview(TASKS_QUEUE="not-served"):  # the immediate backend serves "default" only
        notice = deliver(django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PENDING
    assert "waits for the sweep" in caplog.text


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
        import topview_callbacks.admin, topview_callbacks.scheduling, topview_callbacks.views
        from django.core.management import call_command
        call_command("check")
        assert not [name for name in sys.modules if name.startswith("django_tasks")]
        assert "django.tasks" not in sys.modules
        print("ok")
        """,
    )
    assert out.strip().endswith("ok")
