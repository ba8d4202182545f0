"""How notices are processed: the backend, retries, the sweep, verification."""

from __future__ import annotations

from typing import Any

from topview_callbacks.conf.base import SettingsReader

PROCESSING_MODES = ("inline", "celery", "tasks", "manual")

DEFAULTS: dict[str, Any] = {
    # "inline": process in the request that stores the notice, in its transaction;
    # "celery": a Celery worker drains the stored notices; "tasks": a worker of Django's
    # Tasks framework (django.tasks, or the django-tasks backport) does; "manual": only
    # store (run `manage.py topview_process_pending`, or the sweep).
    "PROCESSING": "inline",
    # "tasks": the alias in the project's TASKS setting whose backend runs our tasks ...
    "TASKS_BACKEND": "default",
    # ... and the queue they go to (the backend's QUEUES must list it, when it lists any).
    "TASKS_QUEUE": "default",
    # Attempts at a notice (its receivers failing, or its process dying) or at a download
    # before it is given up as failed; a VERIFY_WITH_QUERY notice Topview cannot confirm is
    # given up after as many; the queues retry a broken database connection as often.
    "MAX_ATTEMPTS": 5,
    # Seconds before the first retry of a failed attempt; doubled on each further attempt,
    # capped at RETRY_BACKOFF_MAX, and at least half of it taken at random (jitter).
    "RETRY_BACKOFF": 10.0,
    "RETRY_BACKOFF_MAX": 600.0,
    # Seconds after which a notice due and untouched counts as lost by its queue (the broker
    # was down, a message was lost): the sweep starts it again.
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
    def sweep_after(self) -> float:
        """Seconds; see ``SWEEP_AFTER``."""
        return float(self._get("SWEEP_AFTER"))

    @property
    def verify_with_query(self) -> bool:
        return bool(self._get("VERIFY_WITH_QUERY"))
