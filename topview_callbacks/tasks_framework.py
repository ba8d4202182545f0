"""Django's Tasks framework: thin wrappers over ``processing``, ``sweeping``, ``polling`` and
``pruning``, for ``PROCESSING = "tasks"``.

Uses ``django.tasks`` (Django 6.0+), else the ``django-tasks`` backport (``django_tasks``).
This is the only module of the package that imports either; nothing imports it unless
``PROCESSING`` is ``"tasks"`` (``scheduling`` imports it then) or a worker runs one of its
tasks. As with Celery, a task carries only the notice id and the notice row is the truth:
the claim in ``process_notice`` is atomic, so a repeated or late task never fires receivers
twice, and a lost one (its worker died) is restarted by the sweep.

The framework has no retries of its own: a failed attempt enqueues the next one with
``run_after`` (the backoff of ``retrying``), on backends that can defer. On those that can't
(the immediate backend), the sweep restarts a failed notice with attempts left.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from topview_callbacks import polling, pruning, retrying, sweeping
from topview_callbacks.conf import topview_settings

if TYPE_CHECKING:
    from django.tasks import Task, TaskContext, task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
else:  # the rest is only named in annotations
    try:
        from django.tasks import task, task_backends
    except ImportError:  # Django < 6.0: the backport, pip install "topview-callbacks[tasks]"
        from django_tasks import task, task_backends

logger = logging.getLogger(__name__)


def backend() -> BaseTaskBackend:
    """The backend of ``TASKS_BACKEND`` (an alias of the project's ``TASKS`` setting)."""
    return task_backends[topview_settings.tasks_backend]


def _configured(job: Task[Any, Any], *, delay: float | None = None) -> Task[Any, Any]:
    # Backend and queue as configured now, not when this module was imported.
    run_after = timezone.now() + timedelta(seconds=delay) if delay is not None else None
    return job.using(
        backend=topview_settings.tasks_backend,
        queue_name=topview_settings.tasks_queue,
        run_after=run_after,
    )


# The decorator checks backend and queue at import time: a worker imports this module with
# its own settings, and ``_configured`` re-reads them for every enqueue.
_BACKEND, _QUEUE = topview_settings.tasks_backend, topview_settings.tasks_queue


@task(takes_context=True, backend=_BACKEND, queue_name=_QUEUE)
def process_notice(
    context: TaskContext[Any, Any], notice_id: int, database_retries: int = 0
) -> str | None:
    """Process one notice; retry with backoff while its receivers raise, up to MAX_ATTEMPTS."""
    job_id = context.task_result.id
    runner, fields = f"django task {job_id}", {"django_task_id": job_id}
    try:
        notice = retrying.attempt(notice_id)
    except (OperationalError, InterfaceError) as exc:
        delay = retrying.after_database_error(
            notice_id, exc, database_retries, runner=runner, fields=fields, logger=logger
        )
        # With a database backend the retry can't be stored either: then the sweep it is.
        if delay is None or not _retry(notice_id, delay, database_retries + 1):
            raise
        return None
    delay = retrying.after_attempt(notice_id, notice, runner=runner, fields=fields, logger=logger)
    if delay is not None:
        _retry(notice_id, delay, database_retries)
    return None if notice is None else str(notice.state)


def _retry(notice_id: int, delay: float, database_retries: int) -> bool:
    """Enqueue the next attempt ``delay`` seconds from now; False when it can't be."""
    if not backend().supports_defer:
        logger.warning(
            "Topview notice id=%s: the %r tasks backend can't defer a task; the sweep "
            "retries it after SWEEP_AFTER + RETRY_BACKOFF_MAX",
            notice_id,
            topview_settings.tasks_backend,
            extra={"topview_notice_id": notice_id},
        )
        return False
    return _publish(notice_id, delay=delay, database_retries=database_retries)


def _publish(notice_id: int, *, delay: float | None = None, database_retries: int = 0) -> bool:
    try:
        _configured(process_notice, delay=delay).enqueue(notice_id, database_retries)
    except Exception:
        logger.exception(
            "Could not queue Topview notice id=%s on the %r tasks backend; it waits for the sweep",
            notice_id,
            topview_settings.tasks_backend,
            extra={"topview_notice_id": notice_id},
        )
        return False
    return True


def enqueue_notice(notice_id: int) -> None:
    """Queue processing of a stored notice once the current transaction commits. Never raises.

    If the task can't be enqueued the error is logged and the notice stays pending, where
    ``sweep`` finds it after ``SWEEP_AFTER`` seconds.
    """
    transaction.on_commit(lambda: _publish(notice_id))


@task(backend=_BACKEND, queue_name=_QUEUE)
def sweep() -> int:
    """Periodic: queue notices stuck pending or processing past ``SWEEP_AFTER``."""
    return sweeping.sweep(restart=enqueue_notice)


@task(backend=_BACKEND, queue_name=_QUEUE)
def reconcile() -> dict[str, Any]:
    """Periodic: poll Topview for tasks whose notice is overdue (``polling.reconcile``)."""
    report = polling.reconcile()
    logger.info("Reconcile: %s", report)
    return dataclasses.asdict(report)  # results are stored as JSON


@task(backend=_BACKEND, queue_name=_QUEUE)
def prune() -> dict[str, int]:
    """Periodic: delete old notices and tasks (``PRUNE_AFTER_DAYS``, ``PRUNE_FAILED_...``)."""
    return dataclasses.asdict(pruning.prune())


def enqueue(job: Task[Any, Any], *, delay: float | None = None) -> Any:
    """Enqueue ``sweep``, ``reconcile`` or ``prune`` on the configured backend and queue,
    ``delay`` seconds from now; returns the framework's ``TaskResult``."""
    return _configured(job, delay=delay).enqueue()
