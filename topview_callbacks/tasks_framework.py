"""Django's Tasks framework: thin wrappers over ``processing`` (through ``queues`` and
``batching``), ``polling``, ``pruning`` and ``archiving``, for ``PROCESSING = "tasks"``.

Uses ``django.tasks`` (Django 6.0+), else the ``django-tasks`` backport (``django_tasks``).
This is the only module of the package that imports either; nothing imports it unless
``PROCESSING`` is ``"tasks"`` (``scheduling`` imports it then) or a worker runs one of its
tasks. As with Celery, a task carries only a row's id and the row is the truth: the claim
in ``process_notice`` is atomic, so a repeated or late task never fires receivers twice,
and a lost one (its worker died) is restarted by the sweep.

The framework has no retries of its own: a failed attempt enqueues the next one with
``run_after`` (the backoff of ``retrying``), on backends that can defer. On those that can't
(the immediate backend), the sweep restarts a failed notice with attempts left, and a
download whose retry is due.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from topview_callbacks import batching, polling, pruning, queues, retrying
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


def _enqueue(
    job: Task[Any, Any],
    *args: Any,
    delay: float | None = None,
    what: str,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Enqueue ``job(*args)``, ``delay`` seconds from now; False (logged) when it can't be.
    ``what`` names the work in the log ("Topview notice id=7"), ``extra`` its fields."""
    try:
        _configured(job, delay=delay).enqueue(*args)
    except Exception:
        logger.exception(
            "Could not queue %s on the %r tasks backend; it waits for the sweep",
            what,
            topview_settings.tasks_backend,
            extra=extra,
        )
        return False
    return True


def _can_defer(what: str, extra: dict[str, Any] | None = None) -> bool:
    if backend().supports_defer:
        return True
    logger.warning(
        "%s: the %r tasks backend can't defer a task; the sweep retries it when due",
        what,
        topview_settings.tasks_backend,
        extra=extra,
    )
    return False


def _notice(notice_id: int) -> dict[str, Any]:
    """``what`` and ``extra`` of ``_enqueue`` for a notice."""
    return {"what": f"Topview notice id={notice_id}", "extra": {"topview_notice_id": notice_id}}


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
    delay = queues.follow_up(
        notice_id, notice, archive=enqueue_archive, runner=runner, fields=fields, logger=logger
    )
    if delay is not None:
        _retry(notice_id, delay)
    return None if notice is None else str(notice.state)


def _retry(notice_id: int, delay: float, database_retries: int = 0) -> bool:
    """Enqueue the notice's next attempt ``delay`` seconds from now; False when it can't be."""
    named = _notice(notice_id)
    return _can_defer(**named) and _enqueue(
        process_notice, notice_id, database_retries, delay=delay, **named
    )


def enqueue_notice(notice_id: int) -> None:
    """Queue processing of a stored notice once the current transaction commits. Never raises.

    If the task can't be enqueued the error is logged and the notice stays pending, where
    ``sweep`` finds it after ``SWEEP_AFTER`` seconds.
    """
    transaction.on_commit(lambda: _enqueue(process_notice, notice_id, 0, **_notice(notice_id)))


def enqueue_new_notice(notice_id: int) -> None:
    """``PROCESSING="tasks"``: start a notice the view just stored. Never raises.

    With ``BATCH_SIZE`` 1, or a backend that can't defer (the immediate backend runs a task
    where it is enqueued: nothing to share), the notice gets its own task
    (``enqueue_notice``). Otherwise a drain is requested (``request_drain``): one task for
    the notices of a ``BATCH_WINDOW``.
    """
    if topview_settings.batch_size > 1 and backend().supports_defer:
        transaction.on_commit(request_drain)
    else:
        enqueue_notice(notice_id)


_drain_window = batching.DrainWindow()
_DRAIN = "a drain of pending Topview notices"


def request_drain() -> None:
    """Ask a worker to drain pending notices, after this process committed one. Never raises.

    At most one task per ``BATCH_WINDOW`` right away, and one due at the window's end
    (``batching.DrainWindow``); the sweep stays the safety net for a task that is lost.
    """
    delay = _drain_window.request(topview_settings.batch_window)
    if delay is not None:
        _enqueue(drain, 0, delay=delay or None, what=_DRAIN)


@task(takes_context=True, backend=_BACKEND, queue_name=_QUEUE)
def drain(context: TaskContext[Any, Any], database_retries: int = 0) -> int:
    """Process up to ``BATCH_SIZE`` pending notices (``batching.drain``); returns how many.

    A notice whose receiver raised gets its own ``process_notice`` task, due after its
    backoff (attempts are counted on the notice). A full batch enqueues another drain.
    """
    job_id = context.task_result.id
    runner, fields = f"django drain {job_id}", {"django_task_id": job_id}
    try:
        return queues.run_drain(
            archive=enqueue_archive,
            retry=_retry,
            again=lambda: _enqueue(drain, 0, what=_DRAIN),
            runner=runner,
            fields=fields,
            logger=logger,
        )
    except (OperationalError, InterfaceError) as exc:
        delay = retrying.after_database_error(
            0, exc, database_retries, runner=runner, fields=fields, logger=logger
        )
        retried = delay is not None and _can_defer(_DRAIN)
        if not retried or not _enqueue(drain, database_retries + 1, delay=delay, what=_DRAIN):
            raise
        return 0


@task(takes_context=True, backend=_BACKEND, queue_name=_QUEUE)
def archive_media(context: TaskContext[Any, Any], media_id: int) -> str | None:
    """Download one output file into the storage (``ARCHIVE_MEDIA``); retried with backoff
    up to ``MAX_ATTEMPTS`` (counted on the row)."""
    media, delay = queues.archive_media(media_id)
    if delay is not None:
        what = f"the download of archived media id={media_id}"
        if _can_defer(what):
            _enqueue(archive_media, media_id, delay=delay, what=what)
    return None if media is None else str(media.state)


def enqueue_media(media_id: int) -> None:
    """Queue the download of one file once the current transaction commits. Never raises."""
    what = f"the download of archived media id={media_id}"
    transaction.on_commit(lambda: _enqueue(archive_media, media_id, what=what))


def enqueue_archive(task_pk: int) -> None:
    """Queue the due downloads of one task's files, one task per file."""
    queues.archive_task_media(task_pk, enqueue_media)


@task(backend=_BACKEND, queue_name=_QUEUE)
def sweep() -> int:
    """Periodic: queue notices stuck pending or processing past ``SWEEP_AFTER``, and (with
    ``ARCHIVE_MEDIA``) the media downloads that are due or were left by a dead worker."""
    return queues.sweep(restart=enqueue_notice, restart_media=enqueue_media)


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
    """Enqueue ``sweep``, ``reconcile``, ``prune`` (or ``drain``) on the configured backend
    and queue, ``delay`` seconds from now; returns the framework's ``TaskResult``."""
    return _configured(job, delay=delay).enqueue()
