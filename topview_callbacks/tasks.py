"""Celery tasks: thin wrappers over ``processing``, ``sweeping``, ``polling`` and ``pruning``.

This is the only module of the package that imports Celery; nothing imports it unless
``PROCESSING`` is ``"celery"`` (``scheduling`` imports it then) or the host's Celery app
discovers it. Messages carry only the notice id: the database is the truth,
so a lost, repeated or late message can never fire receivers twice (the claim in
``process_notice`` is atomic) and a lost one is picked up by the sweep.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError, close_old_connections, transaction

from topview_callbacks import batching, polling, pruning, queues, retrying
from topview_callbacks.conf import topview_settings

__all__ = [
    "archive_media_task",
    "drain_task",
    "enqueue_archive",
    "enqueue_media",
    "enqueue_new_notice",
    "enqueue_notice",
    "process_notice_task",
    "prune_task",
    "reconcile_task",
    "request_drain",
    "sweep_task",
]

logger = logging.getLogger(__name__)

# Publishing gives up quickly when the broker is down: the web request waits for it, and the
# notice is stored and acknowledged anyway (it stays pending; the sweep queues it later).
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


# The tasks that must not be lost mid-run: acknowledged only when done, so a worker that dies
# mid-task leaves the message to be delivered again (Redis: after its visibility timeout),
# and the claim's stale_after (or the media row's stale claim) lets that delivery take over.
# Attempts are counted on the rows, which survive lost messages, not by Celery.
DURABLE_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,
    "ignore_result": True,
}


@shared_task(name="topview_callbacks.process_notice", **DURABLE_TASK_OPTIONS)
def process_notice_task(self: Task[Any, Any], notice_id: int) -> str | None:
    """Process one notice; retry with backoff while its receivers raise, up to MAX_ATTEMPTS."""
    if self.request.is_eager or self.request.called_directly:
        return _process(self, notice_id)  # not in a worker: maybe inside a transaction
    # Connections live as in a web request: CONN_MAX_AGE applies, and one left broken (the
    # database restarted) is dropped rather than failing every later task in this process.
    # That matters once CELERY_DB_REUSE_MAX stops Celery closing them after every task.
    close_old_connections()
    try:
        return _process(self, notice_id)
    finally:
        close_old_connections()


def _process(task: Task[Any, Any], notice_id: int) -> str | None:
    task_id = task.request.id
    runner, fields = f"celery task {task_id}", {"celery_task_id": task_id}
    try:
        notice = retrying.attempt(notice_id)
    except (OperationalError, InterfaceError) as exc:
        delay = retrying.after_database_error(
            notice_id, exc, task.request.retries, runner=runner, fields=fields, logger=logger
        )
        if delay is None:
            raise
        raise task.retry(countdown=delay, exc=exc) from exc
    delay = queues.follow_up(
        notice_id, notice, archive=enqueue_archive, runner=runner, fields=fields, logger=logger
    )
    if delay is not None:
        raise task.retry(countdown=delay)
    return None if notice is None else str(notice.state)


def _publish_options(countdown: float | None) -> dict[str, Any]:
    return {"countdown": countdown, "retry": True, "retry_policy": PUBLISH_RETRY_POLICY}


def _publish(notice_id: int, countdown: float | None = None) -> None:
    try:
        process_notice_task.apply_async((notice_id,), **_publish_options(countdown))
    except Exception:
        logger.exception(
            "Could not queue Topview notice id=%s (is the broker down?); it stays pending "
            "until the sweep queues it",
            notice_id,
            extra={"topview_notice_id": notice_id},
        )


def enqueue_notice(notice_id: int) -> None:
    """Queue processing of a stored notice once the current transaction commits. Never raises.

    If the broker is unreachable the error is logged and the notice stays pending, where
    ``sweep`` finds it after ``SWEEP_AFTER`` seconds.
    """
    transaction.on_commit(lambda: _publish(notice_id))


def enqueue_new_notice(notice_id: int) -> None:
    """``PROCESSING="celery"``: start a notice the view just stored. Never raises.

    With ``BATCH_SIZE`` 1, the notice gets its own message (``enqueue_notice``). Above 1, a
    drain is requested instead (``request_drain``): one message for the notices of a window.
    """
    if topview_settings.batch_size > 1:
        transaction.on_commit(request_drain)
    else:
        enqueue_notice(notice_id)


_drain_window = batching.DrainWindow()


def request_drain() -> None:
    """Ask a worker to drain pending notices, after this process committed one. Never raises.

    At most one message per ``BATCH_WINDOW`` right away, and one due at the window's end
    (``batching.DrainWindow``); the sweep stays the safety net for lost messages.
    """
    countdown = _drain_window.request(topview_settings.batch_window)
    if countdown is not None:
        _publish_drain(countdown or None)


def _publish_drain(countdown: float | None = None) -> None:
    try:
        drain_task.apply_async(**_publish_options(countdown))
    except Exception:
        logger.exception(
            "Could not queue a drain of pending Topview notices (is the broker down?); they "
            "stay pending until the sweep queues them"
        )


@shared_task(name="topview_callbacks.drain", **DURABLE_TASK_OPTIONS)
def drain_task(self: Task[Any, Any]) -> int:
    """Process up to ``BATCH_SIZE`` pending notices (``batching.drain``); returns how many.

    A notice whose receiver raised gets its own ``process_notice`` message, due after its
    backoff (attempts are counted on the notice). A full batch asks for another drain.
    """
    eager = self.request.is_eager or self.request.called_directly
    runner, fields = f"celery drain {self.request.id}", {"celery_task_id": self.request.id}
    if not eager:
        close_old_connections()
    try:
        return queues.run_drain(
            archive=enqueue_archive,
            retry=lambda notice_id, delay: _publish(notice_id, countdown=delay),
            again=_publish_drain,
            runner=runner,
            fields=fields,
            logger=logger,
        )
    except (OperationalError, InterfaceError) as exc:
        delay = retrying.after_database_error(
            0, exc, self.request.retries, runner=runner, fields=fields, logger=logger
        )
        if delay is None:
            raise
        raise self.retry(countdown=delay, exc=exc) from exc
    finally:
        if not eager:
            close_old_connections()


@shared_task(name="topview_callbacks.sweep", ignore_result=True)
def sweep_task() -> int:
    """Periodic: queue notices stuck pending or processing past ``SWEEP_AFTER``, and (with
    ``ARCHIVE_MEDIA``) the media downloads that are due or were left by a dead worker."""
    return queues.sweep(restart=enqueue_notice, restart_media=enqueue_media)


@shared_task(name="topview_callbacks.archive_media", **DURABLE_TASK_OPTIONS)
def archive_media_task(self: Task[Any, Any], media_id: int) -> str | None:
    """Download one output file into the storage; retried with backoff (``MAX_ATTEMPTS``)."""
    if not (self.request.is_eager or self.request.called_directly):
        close_old_connections()
    try:
        media, countdown = queues.archive_media(media_id)
    finally:
        if not (self.request.is_eager or self.request.called_directly):
            close_old_connections()
    if countdown is not None:
        raise self.retry(countdown=countdown)
    return None if media is None else str(media.state)


def enqueue_media(media_id: int) -> None:
    """Queue the download of one file once the current transaction commits. Never raises."""
    transaction.on_commit(lambda: _publish_media(media_id))


def _publish_media(media_id: int) -> None:
    try:
        archive_media_task.apply_async((media_id,), retry=True, retry_policy=PUBLISH_RETRY_POLICY)
    except Exception:
        logger.exception(
            "Could not queue the download of archived media id=%s; the sweep queues it later",
            media_id,
        )


def enqueue_archive(task_pk: int) -> None:
    """Queue the due downloads of one task's files, one message per file."""
    queues.archive_task_media(task_pk, enqueue_media)


@shared_task(name="topview_callbacks.reconcile", ignore_result=True)
def reconcile_task() -> Any:
    """Periodic: poll Topview for tasks whose notice is overdue (``polling.reconcile``)."""
    report = polling.reconcile()
    logger.info("Reconcile: %s", report)
    return dataclasses.asdict(report)  # plain data, in case results are stored as JSON


@shared_task(name="topview_callbacks.prune", ignore_result=True)
def prune_task() -> dict[str, int]:
    """Periodic: delete old notices and tasks (``PRUNE_AFTER_DAYS``, ``PRUNE_FAILED_...``)."""
    return dataclasses.asdict(pruning.prune())
