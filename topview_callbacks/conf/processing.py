"""How notices are processed: the backend, retries, batching, the sweep, verification."""

from __future__ import annotations

from typing import Any

from topview_callbacks.conf.base import SettingsReader

PROCESSING_MODES = ("inline", "celery", "tasks", "manual")

DEFAULTS: dict[str, Any] = {
    # "inline": process after commit in the request; "celery": enqueue a Celery task;
    # "tasks": enqueue a task of Django's Tasks framework (django.tasks, or the django-tasks
    # backport); "manual": only store (run `manage.py topview_process_pending` or a sweep).
    "PROCESSING": "inline",
    # "tasks": the alias in the project's TASKS setting whose backend runs our tasks ...
    "TASKS_BACKEND": "default",
    # ... and the queue they go to (the backend's QUEUES must list it, when it lists any).
    "TASKS_QUEUE": "default",
    # Celery and Tasks: attempts at running a notice's receivers (the first one included) before the
    # notice stays "failed" (replay it from the admin or `topview_reprocess`).
    "MAX_ATTEMPTS": 5,
    # Celery and Tasks: seconds before the first retry after a receiver raised; doubled on each
    # further attempt, capped at RETRY_BACKOFF_MAX.
    "RETRY_BACKOFF": 10.0,
    "RETRY_BACKOFF_MAX": 600.0,
    # Celery and Tasks: wait a random 50-100% of the backoff, so failures don't retry in lockstep.
    "RETRY_JITTER": True,
    # Celery and Tasks: notices one "drain" task processes (claimed one at a time, oldest
    # pending first, FOR UPDATE SKIP LOCKED on PostgreSQL). 1: one task per notice. Above 1,
    # the web side queues at most one drain per BATCH_WINDOW and process (plus one due at
    # the window's end), so the queue's per-task cost is shared by the notices of a window.
    # Tasks on a backend that can't defer (the immediate one): always one task per notice.
    "BATCH_SIZE": 1,
    # Celery and Tasks with BATCH_SIZE > 1: seconds a web process waits before it queues
    # another drain; a notice waits at most about this long for its drain to start.
    "BATCH_WINDOW": 0.05,
    # PostgreSQL: commit the final "processed" mark with synchronous_commit=off (one WAL
    # flush less per notice). A database crash may then lose the marks of the last moments:
    # those notices are found by the sweep and their receivers run again. Off: always durable.
    "ASYNC_PROCESSED_MARK": False,
    # PostgreSQL: run the pipeline's few statements as server-side prepared statements
    # (parsed and planned once per connection). Off by default: connection poolers in
    # transaction mode (PgBouncer before 1.21, without max_prepared_statements) break them.
    "PREPARED_STATEMENTS": False,
    # Seconds after which a notice still pending (the broker was down) or still processing
    # (its worker died) counts as stuck: the sweep restarts it. Keep it above the longest
    # time your receivers may take, or a slow receiver could be run twice.
    "SWEEP_AFTER": 300.0,
    # True: before firing the signals for a callback, confirm it with the query endpoint and
    # keep Topview's answer (callbacks are unsigned). One API call per callback.
    "VERIFY_WITH_QUERY": False,
}


class ProcessingSettings(SettingsReader):
    @property
    def processing(self) -> str:
        return str(self._get("PROCESSING"))

    @property
    def tasks_backend(self) -> str:
        """The ``TASKS`` alias ``PROCESSING="tasks"`` enqueues to."""
        return str(self._get("TASKS_BACKEND"))

    @property
    def tasks_queue(self) -> str:
        """The queue name ``PROCESSING="tasks"`` enqueues to."""
        return str(self._get("TASKS_QUEUE"))

    @property
    def max_attempts(self) -> int:
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def retry_backoff(self) -> float:
        return float(self._get("RETRY_BACKOFF"))

    @property
    def retry_backoff_max(self) -> float:
        return float(self._get("RETRY_BACKOFF_MAX"))

    @property
    def retry_jitter(self) -> bool:
        return bool(self._get("RETRY_JITTER"))

    @property
    def batch_size(self) -> int:
        return max(int(self._get("BATCH_SIZE")), 1)

    @property
    def batch_window(self) -> float:
        return float(self._get("BATCH_WINDOW"))

    @property
    def async_processed_mark(self) -> bool:
        return bool(self._get("ASYNC_PROCESSED_MARK"))

    @property
    def prepared_statements(self) -> bool:
        return bool(self._get("PREPARED_STATEMENTS"))

    @property
    def sweep_after(self) -> float:
        """Seconds; see ``SWEEP_AFTER``."""
        return float(self._get("SWEEP_AFTER"))

    @property
    def verify_with_query(self) -> bool:
        return bool(self._get("VERIFY_WITH_QUERY"))
