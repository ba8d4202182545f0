"""Starting work on a stored notice: the one module that knows the processing backends.

``PROCESSING`` picks the backend: ``"inline"`` processes in this process (after the commit
of the request that stored the notice), ``"celery"`` queues a Celery task, ``"tasks"`` a
task of Django's Tasks framework (on the ``TASKS_BACKEND`` and ``TASKS_QUEUE`` configured),
``"manual"`` only stores (``manage.py topview_process_pending`` or a sweep runs it later).
The queue wrappers are imported only when their backend is chosen: the package works
without Celery and without the Tasks framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from topview_callbacks import processing
from topview_callbacks.conf import topview_settings

logger = logging.getLogger(__name__)

Restart = Callable[[int], object]


def start(notice_id: int, *, redelivered: bool = False) -> None:
    """Start processing a newly stored notice as ``PROCESSING`` says. Never raises.

    Called on commit by the view. An error here leaves the notice pending, where the sweep
    finds it: the notice is stored, so nothing is lost. ``redelivered``: a repeated delivery
    of a notice still pending restarts it; ``notice_stored`` is not sent again.
    """
    try:
        if not redelivered:
            processing.announce_stored(notice_id)
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

        return tasks.enqueue_notice
    if mode == "tasks":
        # django.tasks (Django 6.0+) or the django-tasks backport: optional too.
        from topview_callbacks import tasks_framework

        return tasks_framework.enqueue_notice
    return None


def archive_queue_for(mode: str) -> Restart | None:
    """What starts the download of one archived-media row in ``mode``: a Celery message,
    or None, meaning "download it here" (the command, the admin action). Downloads never
    run in the callback request: with "inline" and "manual" the sweep or
    ``topview_archive_media`` (cron) does them."""
    if mode == "celery":
        from topview_callbacks import tasks

        return tasks.enqueue_media
    return None


def _process_inline(notice_id: int) -> None:
    processing.process_notice(notice_id)
