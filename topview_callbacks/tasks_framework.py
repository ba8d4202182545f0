"""Django's Tasks framework: thin wrappers over ``jobs``, ``polling`` and ``pruning``, for
``PROCESSING = "tasks"``, with the same names as Celery's (``tasks``).

Uses ``django.tasks`` (Django 6.0+), else the ``django-tasks`` backport (``django_tasks``).
This is the only module of the package that imports either; nothing imports it unless
``PROCESSING`` is ``"tasks"`` (``dispatch`` imports it then) or a worker runs one of its
tasks. As with Celery, a task carries only a row's id, or nothing (a drain), and the rows
are the truth: a repeated or late task never fires receivers twice, and a lost one is
restarted by the sweep.

The framework has no retries of its own: a retry is a new task with ``run_after``, on
backends that can defer. On those that can't (the immediate backend), the sweep restarts a
failed notice or download whose retry is due.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from topview_callbacks import jobs, polling, pruning, sending
from topview_callbacks.conf import topview_settings
from topview_callbacks.retrying import retry_in

if TYPE_CHECKING:
    from django.tasks import Task, task, task_backends
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


def _enqueue(job: Task[Any, Any], *args: Any, delay: float | None = None, what: str) -> None:
    """Enqueue ``job(*args)`` on the configured backend and queue (read now, not when this
    module was imported), ``delay`` seconds from now; logged when it can't be: the sweep
    finds the work later."""
    if delay is not None and not backend().supports_defer:
        logger.warning(
            "%s: the %r tasks backend can't defer a task; the sweep runs it when due",
            what,
            topview_settings.tasks_backend,
        )
        return
    try:
        job.using(
            backend=topview_settings.tasks_backend,
            queue_name=topview_settings.tasks_queue,
            run_after=None if delay is None else timezone.now() + timedelta(seconds=delay),
        ).enqueue(*args)
    except Exception:
        logger.exception(
            "Could not queue %s on the %r tasks backend; the sweep finds it later",
            what,
            topview_settings.tasks_backend,
        )


_drain_window = jobs.DrainWindow()

# The decorator checks backend and queue at import time: a worker imports this module with
# its own settings, and ``_enqueue`` re-reads them for every task.
_BACKEND, _QUEUE = topview_settings.tasks_backend, topview_settings.tasks_queue


@task(backend=_BACKEND, queue_name=_QUEUE)
def process_notices(notice_id: int | None = None, database_retries: int = 0) -> int:
    """Drain the due notices (or attempt ``notice_id`` only); tried again with backoff
    while the database is unreachable."""
    try:
        return jobs.process_notices(_queue, notice_id)
    except (OperationalError, InterfaceError) as exc:
        # Nothing was attempted, or the attempt rolled back: try again soon.
        delay = retry_in(database_retries + 1)
        jobs.database_unreachable(exc, delay, "a Django task")
        if delay is None or not backend().supports_defer:
            raise  # the sweep restarts the notices once the database is back
        _enqueue(process_notices, notice_id, database_retries + 1, delay=delay, what="a notice job")
        return 0


@task(backend=_BACKEND, queue_name=_QUEUE)
def archive_media(media_id: int) -> str | None:
    """Download one output file into the storage (``ARCHIVE_MEDIA``); retried with backoff
    up to ``MAX_ATTEMPTS`` (counted on the row)."""
    media, delay = jobs.archive_media(media_id)
    if delay is not None:
        enqueue_media(media_id, delay=delay)
    return None if media is None else str(media.state)


@task(backend=_BACKEND, queue_name=_QUEUE)
def sweep() -> int:
    """Periodic: queue notices nothing works on any more (pending past ``SWEEP_AFTER``, a
    retry whose task was lost), and (``ARCHIVE_MEDIA``) the downloads that are due."""
    return jobs.sweep(_queue)


@task(backend=_BACKEND, queue_name=_QUEUE)
def reconcile() -> dict[str, Any]:
    """Periodic: poll Topview for tasks whose notice is overdue (``polling.reconcile``);
    the outcomes found are processed by ``process_notices`` tasks."""
    return dataclasses.asdict(polling.reconcile(start=enqueue_notice))


@task(backend=_BACKEND, queue_name=_QUEUE)
def prune() -> dict[str, int]:
    """Periodic: delete old notices and tasks (``PRUNE_AFTER_DAYS``, ``PRUNE_FAILED_...``)."""
    return dataclasses.asdict(pruning.prune())


@task(backend=_BACKEND, queue_name=_QUEUE)
def send_queued(account: str | None = None) -> dict[str, Any]:
    """Send the account's due queued submissions while slots are free (``sending``); a
    backed-off one is sent by a task due when its backoff ends (on backends that defer).
    Periodic (no account): every account's."""
    report = sending.send_queued(account)
    if report.retry_in is not None:
        request_sending(account, delay=report.retry_in)
    return dataclasses.asdict(report)


def request_sending(account: str | None = None, *, delay: float | None = None) -> None:
    """Queue a ``send_queued`` task once the current transaction commits. Never raises."""
    what = f"the sending of account {account!r}'s queued Topview submissions"

    def publish(countdown: float | None) -> None:
        _enqueue(send_queued, account, delay=countdown, what=what)

    if delay is not None or not backend().supports_defer:
        transaction.on_commit(lambda: publish(delay))
    else:  # at most one task per jobs.DRAIN_WINDOW, and one at its end
        transaction.on_commit(lambda: jobs.sending_window(account).request(publish))


def enqueue_notice(notice_id: int, *, delay: float | None = None) -> None:
    """Queue an attempt at one notice once the current transaction commits, ``delay``
    seconds from now. Never raises."""
    what = f"Topview notice id={notice_id}"
    transaction.on_commit(lambda: _enqueue(process_notices, notice_id, delay=delay, what=what))


def request_drain() -> None:
    """Ask a worker to drain the due notices, after this process stored one (at most one
    task per ``jobs.DRAIN_WINDOW``; on a backend that can't defer, one task each time).
    Never raises."""

    def publish(delay: float | None) -> None:
        _enqueue(process_notices, delay=delay, what="a drain of Topview notices")

    if not backend().supports_defer:
        transaction.on_commit(lambda: publish(None))
    else:
        transaction.on_commit(lambda: _drain_window.request(publish))


def enqueue_media(media_id: int, *, delay: float | None = None) -> None:
    """Queue the download of one file once the current transaction commits. Never raises."""
    what = f"the download of archived media id={media_id}"
    transaction.on_commit(lambda: _enqueue(archive_media, media_id, delay=delay, what=what))


def enqueue(job: Task[Any, Any], *, delay: float | None = None) -> Any:
    """Enqueue ``sweep``, ``reconcile``, ``prune`` (or a drain, ``process_notices``) on the
    configured backend and queue, ``delay`` seconds from now; the framework's result."""
    run_after = None if delay is None else timezone.now() + timedelta(seconds=delay)
    return job.using(
        backend=topview_settings.tasks_backend,
        queue_name=topview_settings.tasks_queue,
        run_after=run_after,
    ).enqueue()


_queue = jobs.Queue(enqueue_notice, enqueue_media, request_drain)
