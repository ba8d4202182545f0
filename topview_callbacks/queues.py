"""What the two queue wrappers (Celery's ``tasks``, Django Tasks' ``tasks_framework``) do
around the pipeline, written once: what follows a notice's run, a drain with its follow-ups,
and the sweep of notices and media.

Each wrapper passes its own ways of starting work (a Celery message, a Tasks task) as
callables; this module imports no queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from topview_callbacks import archiving, batching, retrying, sweeping
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, NoticeState

Start = Callable[[int], object]


def archive_due(notice: Notice) -> bool:
    """Whether this run recorded a successful outcome whose files are to be archived."""
    return (
        topview_settings.archive_media
        and notice.succeeded
        and notice.submitted_task_id is not None
        and notice.state != NoticeState.DUPLICATE
    )


def follow_up(
    notice_id: int,
    notice: Notice | None,
    *,
    archive: Start,
    runner: str,
    fields: dict[str, Any],
    logger: logging.Logger,
) -> float | None:
    """After one run of a notice (``notice``: what the pipeline returned, None if not
    claimed): start archiving its task's files (``archive`` gets the task's pk) when due, log
    the run (``retrying.after_attempt``), and return the seconds before its next attempt, or
    None when there is none to make."""
    if notice is not None and archive_due(notice):
        archive(notice.submitted_task_id)  # type: ignore[arg-type]  # checked by archive_due
    return retrying.after_attempt(notice_id, notice, runner=runner, fields=fields, logger=logger)


def run_drain(
    *,
    archive: Start,
    retry: Callable[[int, float], object],
    again: Callable[[], object],
    runner: str,
    fields: dict[str, Any],
    logger: logging.Logger,
) -> int:
    """A drain job: ``batching.drain`` up to ``BATCH_SIZE`` notices, then each one's
    follow-up; a notice whose receivers raised gets its own retry (``retry(notice_id,
    delay)``); a full batch calls ``again`` (more may be waiting). Returns how many ran.
    Database errors propagate: the wrapper decides how its queue retries the drain."""
    limit = topview_settings.batch_size
    notices = batching.drain(limit)
    for notice in notices:
        delay = follow_up(
            notice.pk, notice, archive=archive, runner=runner, fields=fields, logger=logger
        )
        if delay is not None:
            retry(notice.pk, delay)
    if len(notices) >= limit:
        again()
    return len(notices)


def sweep(*, restart: Start, restart_media: Start) -> int:
    """The periodic sweep: restart stuck notices, and (``ARCHIVE_MEDIA``) the media
    downloads that are due or were left by a dead worker; returns how many."""
    restarted = sweeping.sweep(restart=restart)
    if topview_settings.archive_media:
        restarted += archiving.sweep(restart=restart_media, limit=1000)
    return restarted


def archive_task_media(task_pk: int, start: Start) -> None:
    """Start the due downloads of one task's files, one job per file (so several workers
    share a task's videos)."""
    for media_id in archiving.due_media().filter(task_id=task_pk).values_list("pk", flat=True):
        start(media_id)


def archive_media(media_id: int) -> tuple[ArchivedMedia | None, float | None]:
    """A download job: ``archiving.archive_one``. Returns the row in its new state (None: it
    was not due) and the seconds before its retry (None: no retry to make)."""
    media = archiving.archive_one(media_id)
    if media is None or media.state != MediaState.PENDING or media.next_attempt_at is None:
        return media, None
    # The retry time is on the row too: if the retry job is lost, the sweep finds the row.
    return media, max(0.0, (media.next_attempt_at - timezone.now()).total_seconds())
