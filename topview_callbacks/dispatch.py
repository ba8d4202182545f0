"""Who processes a delivery, and where: the one module that knows the processing backends.

``PROCESSING`` picks the backend: ``"inline"`` processes a notice in the request that
stores it, in the same transaction (``processing.receive``); ``"celery"`` and ``"tasks"``
store it pending and ask a worker to drain what is due (a Celery task, or a task of
Django's Tasks framework on ``TASKS_BACKEND`` and ``TASKS_QUEUE``); ``"manual"`` only
stores it (``manage.py topview_process_pending`` or the sweep runs it later). The queue
wrappers are imported only when their backend is chosen: the package works without Celery
and without the Tasks framework.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from topview_callbacks import partitions, processing, rollups, sending
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    FINAL_TASK_STATUSES,
    Notice,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)
from topview_callbacks.processing.reconnecting import once_more_if_connection_lost

logger = logging.getLogger(__name__)

Start = Callable[[int], object]


def deliver(values: dict[str, Any]) -> processing.Received:
    """Store one delivery of a notice and start its processing, as ``PROCESSING`` says.

    Inline (without VERIFY_WITH_QUERY, which must not hold a transaction across its call
    to Topview) the notice is stored, recorded and fired in one transaction; otherwise it
    is stored pending and started once that commits. A repeated uuid writes nothing; one
    still unfinished (its worker died, its message was lost) is started again. A store
    that failed on a persistent connection lost meanwhile (the database or its pooler
    restarted) runs once more on a new one (``processing.reconnecting``).
    """
    return once_more_if_connection_lost(functools.partial(_deliver, values))


def _deliver(values: dict[str, Any]) -> processing.Received:
    mode = topview_settings.processing
    if mode == "inline" and not topview_settings.verify_with_query:
        received = processing.receive(values)
    else:
        received = processing.store(values)
        if received.notice is not None:
            transaction.on_commit(functools.partial(start, received.notice.pk, new=True))
        elif mode != "manual":
            pending = Notice.objects.filter(
                **partitions.uuid_filter([values["uuid"]]), state=NoticeState.PENDING
            )
            received = processing.Received(None, pending.values_list("pk", flat=True).first())
    if received.pending_id is not None:
        logger.info(
            "Repeated delivery of Topview notice %r, still pending: starting it",
            values["uuid"],
            extra={"topview_notice_id": received.pending_id, "topview_notice_uuid": values["uuid"]},
        )
        transaction.on_commit(functools.partial(start, received.pending_id))
    return received


def start(notice_id: int, *, new: bool = False) -> None:
    """Start processing a stored notice as ``PROCESSING`` says. Never raises: the notice
    is stored, so an error here leaves it to the sweep. ``new``: it was just stored (the
    queues then drain a batch of notices instead of running this one alone)."""
    try:
        mode = topview_settings.processing
        if mode == "inline":
            processing.process_due(notice_id=notice_id, limit=1)
        elif mode in ("celery", "tasks"):
            queue = _wrapper(mode)
            if new:
                queue.request_drain()
            else:
                queue.enqueue_notice(notice_id)
    except Exception:
        logger.exception(
            "Could not start processing Topview notice id=%s; it stays pending",
            notice_id,
            extra={"topview_notice_id": notice_id},
        )


def replay(notice_id: int) -> Notice | None:
    """Run a stored notice's receivers again (an operator's choice), with fresh attempts,
    where ``PROCESSING`` runs them: here (the notice is returned as it ended) or on the
    queue (returned pending). None when it cannot be replayed: a duplicate, or an attempt
    holds it right now."""
    if not processing.reset_for_replay(notice_id):
        return None
    # The notice's hour is counted again (its state changes under the kept counts).
    rollups.forget(Notice.objects.filter(pk=notice_id).values_list("received_at", flat=True))
    restart = restart_for(topview_settings.processing)
    if restart is None:
        done = processing.process_due(notice_id=notice_id, limit=1).notices
        return done[0] if done else None
    restart(notice_id)
    return Notice.objects.filter(pk=notice_id).first()


def restart_for(mode: str) -> Start | None:
    """What queues one stuck notice in ``mode``; None for "inline" and "manual" (the sweep
    processes it where it runs)."""
    if mode in ("celery", "tasks"):
        restart: Start = _wrapper(mode).enqueue_notice
        return restart
    return None


def archive_queue_for(mode: str) -> Start | None:
    """What starts the download of one archived-media row in ``mode``: a Celery message, a
    Tasks task, or None, meaning "download it here" (the command, the admin action).
    Downloads never run in the callback request: with "inline" and "manual" the sweep or
    ``topview_archive_media`` (cron) does them."""
    if mode in ("celery", "tasks"):
        download: Start = _wrapper(mode).enqueue_media
        return download
    return None


def start_sending(account: str | None = None, *, delay: float | None = None) -> None:
    """Start the sender of queued submissions (``sending.send_queued``) as ``PROCESSING``
    says: here and now ("inline"), a Celery or Tasks job (``delay`` seconds from now), or
    nothing ("manual": ``topview_send_queued`` from cron). Inline, a delayed start is left
    to the next outcome or to cron. Never raises: the rows wait queued."""
    try:
        mode = topview_settings.processing
        if mode == "inline":
            if delay is None:
                sending.send_queued(account)
        elif mode in ("celery", "tasks"):
            _wrapper(mode).request_sending(account, delay=delay)
    except Exception:
        logger.exception("Could not start sending the queued Topview submissions of %r", account)


def queued_receiver(*, account: str, **kwargs: Any) -> None:
    """``submissions_queued``: send them (connected in ``apps``)."""
    start_sending(account)


def status_receiver(*, task: SubmittedTask, new_status: str, **kwargs: Any) -> None:
    """``task_status_changed``: a queued submission's task that ended frees a slot of its
    account; start the sender (connected in ``apps``). A task submitted with ``submit``
    frees one too, but costs no look at the queue: the next enqueue, outcome or cron
    pass sends what waits."""
    ended = new_status in FINAL_TASK_STATUSES or new_status == TaskStatus.EXPIRED
    if ended and task.submission:
        start_sending(task.account)


def _wrapper(mode: str) -> Any:
    """The queue wrapper module of ``mode``, imported only now: its framework is optional."""
    if mode == "celery":
        from topview_callbacks import tasks

        return tasks
    from topview_callbacks import tasks_framework

    return tasks_framework
