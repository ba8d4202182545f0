"""Starting work on a stored notice: the one module that knows the processing backends.

``PROCESSING`` picks the backend: ``"inline"`` processes in this process (after the commit
of the request that stored the notice), ``"celery"`` queues a Celery task, ``"tasks"`` a
task of Django's Tasks framework (on the ``TASKS_BACKEND`` and ``TASKS_QUEUE`` configured);
with ``BATCH_SIZE`` above 1 both queues get a drain task for the notices of a window instead
(``batching``). ``"manual"`` only stores (``manage.py topview_process_pending`` or a sweep
runs it later). The queue wrappers are imported only when their backend is chosen: the
package works without Celery and without the Tasks framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from topview_callbacks import outcomes, processing
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Delivery, Notice

logger = logging.getLogger(__name__)

Restart = Callable[[int], object]


def store(*, stale_before: datetime | None, max_attempts: int, **values: Any) -> Delivery:
    """Store one delivery of a notice (the view's one statement).

    Inline on PostgreSQL, the same statement also claims a new notice and records its
    outcome on its task (``outcomes.store_claimed``); ``start`` then only fires the signals.
    Otherwise the notice is stored pending (``Notice.objects.record_delivery``).
    """
    if topview_settings.processing == "inline" and outcomes.supported():
        return outcomes.store_claimed(
            stale_before=stale_before, max_attempts=max_attempts, **values
        )
    return Notice.objects.record_delivery(
        stale_before=stale_before, max_attempts=max_attempts, **values
    )


def start(notice: int | Delivery, *, redelivered: bool = False) -> None:
    """Start processing a newly stored notice as ``PROCESSING`` says. Never raises.

    Called on commit by the view with what ``store`` returned (or a notice id). An error
    here leaves the notice pending (or processing, if ``store`` claimed it), where the sweep
    finds it: the notice is stored, so nothing is lost. ``redelivered``: a repeated delivery
    of a notice still pending restarts it; ``notice_stored`` is not sent again.
    """
    notice_id = notice if isinstance(notice, int) else notice.notice_id
    claimed = notice.claimed if isinstance(notice, outcomes.StoredClaimed) else None
    try:
        if not redelivered:
            processing.announce_stored(notice_id, claimed.notice if claimed else None)
        if claimed is not None:
            processing.process_claimed(claimed)
            return
        queue = queue_for(topview_settings.processing)
        if queue is not None:
            queue(notice_id)
    except Exception:
        logger.exception(
            "Could not start processing Topview notice id=%s; it stays pending",
            notice_id,
            extra={"topview_notice_id": notice_id},
        )


def queue_for(mode: str) -> Restart | None:
    """What starts a notice's processing in ``mode``; None for ``"manual"`` (store only)."""
    if mode == "inline":
        return _process_inline
    if mode == "celery":
        # Celery is optional: imported only by the projects that choose it.
        from topview_callbacks import tasks

        return tasks.enqueue_new_notice
    if mode == "tasks":
        # django.tasks (Django 6.0+) or the django-tasks backport: optional too.
        from topview_callbacks import tasks_framework

        return tasks_framework.enqueue_new_notice
    return None


def archive_queue_for(mode: str) -> Restart | None:
    """What starts the download of one archived-media row in ``mode``: a Celery message, a
    Tasks task, or None, meaning "download it here" (the command, the admin action).
    Downloads never run in the callback request: with "inline" and "manual" the sweep or
    ``topview_archive_media`` (cron) does them."""
    if mode == "celery":
        from topview_callbacks import tasks

        return tasks.enqueue_media
    if mode == "tasks":
        from topview_callbacks import tasks_framework

        return tasks_framework.enqueue_media
    return None


def _process_inline(notice_id: int) -> None:
    processing.process_notice(notice_id)
