"""The jobs both queue wrappers run (Celery's ``tasks``, Django Tasks' ``tasks_framework``),
written once: each wrapper only adapts its queue (``Queue``).

A notice job is a drain: attempts at the due notices, a batch per transaction, until none
is due or the job has run for ``JOB_SECONDS`` (then it asks for another, so one job never
holds a worker for long). A batch grows while notices go fast and shrinks when receivers
are slow, so that a batch's transaction stays short (``BATCH_SECONDS``): a slow receiver
holds back only its own notice. After each batch: archiving for the successes
(``ARCHIVE_MEDIA``) and a retry for each failure, due after its backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from django.utils import timezone

from topview_callbacks import archiving, processing, rollups, sweeping
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, NoticeState, TaskStatus

logger = logging.getLogger(__name__)

# A batch's transaction aims at this long; a batch holds 1 to MAX_BATCH notices.
BATCH_SECONDS = 0.1
FIRST_BATCH, MAX_BATCH = 10, 200
# A job stops taking batches after this long and asks for another job instead.
JOB_SECONDS = 20.0
# A web process asks for at most one drain per window, and one more at its end. Each drain
# is a queue message and a job with costs of their own: a wider window gives fewer, fuller
# jobs (measured in docs/benchmark.md), for at most this much more latency; Topview's
# tasks take minutes.
DRAIN_WINDOW = 0.25


class Enqueue(Protocol):
    def __call__(self, row_id: int, /, *, delay: float | None = None) -> object: ...


@dataclass(frozen=True)
class Queue:
    """What a queue wrapper gives the jobs: its ways to start more work on its queue, an
    attempt at one notice and the download of one file (``delay`` seconds from now), and a
    drain."""

    enqueue_notice: Enqueue
    enqueue_media: Enqueue
    request_drain: Callable[[], object]


def process_notices(queue: Queue, notice_id: int | None = None) -> int:
    """A notice job: drain the due notices (or attempt ``notice_id`` only), then start what
    follows each; returns how many notices it ran. Database errors propagate: the wrapper
    retries the job."""
    deadline = time.monotonic() + JOB_SECONDS
    size, total = (1 if notice_id is not None else FIRST_BATCH), 0
    while True:
        began = time.monotonic()
        batch = processing.process_due(limit=size, notice_id=notice_id)
        for notice in batch.notices:
            follow_up(queue, notice)
        total += len(batch.notices)
        if notice_id is not None or batch.claimed < size:
            return total
        if time.monotonic() > deadline:
            queue.request_drain()  # more may be due: a fresh job goes on
            return total
        per_notice = (time.monotonic() - began) / max(batch.claimed, 1)
        size = max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(per_notice, 1e-6))))


def follow_up(queue: Queue, notice: Notice) -> None:
    """What follows one attempt at a notice: its files' downloads when it recorded a
    success (ARCHIVE_MEDIA), its retry when it failed with attempts left; a log line."""
    extra = notice.log_context()
    if notice.state == NoticeState.FAILED and notice.next_attempt_at is not None:
        delay = max(0.0, (notice.next_attempt_at - timezone.now()).total_seconds())
        logger.warning(
            "Topview notice %r: attempt %s of %s failed; retry in %.1fs",
            notice.uuid,
            notice.attempts,
            topview_settings.max_attempts,
            delay,
            extra=extra,
        )
        queue.enqueue_notice(notice.pk, delay=delay)
        return
    if notice.state == NoticeState.FAILED:
        logger.error(
            "Topview notice %r: failed %s times; giving up. Replay it from the admin or "
            "`topview_reprocess`.",
            notice.uuid,
            notice.attempts,
            extra=extra,
        )
        return
    logger.info("Topview notice %r: %s", notice.uuid, notice.state, extra=extra)
    task = notice.submitted_task
    if (
        topview_settings.archive_media
        and notice.state == NoticeState.PROCESSED
        and task is not None
        and task.status == TaskStatus.SUCCESS
    ):
        for media_id in archiving.due_media().filter(task=task).values_list("pk", flat=True):
            queue.enqueue_media(media_id)


def database_unreachable(error: Exception, retry_in: float | None, runner: str) -> None:
    """Log a notice job's meeting with a database it cannot reach (``retry_in``: seconds
    before its retry; None: no retry, the sweep restarts the notices later)."""
    then = "the sweep restarts its notices" if retry_in is None else f"retry in {retry_in:.1f}s"
    logger.warning("The database is unreachable [%s]: %s; %s", runner, error, then)


def archive_media(media_id: int) -> tuple[ArchivedMedia | None, float | None]:
    """A download job: ``archiving.archive_one``. Returns the row in its new state (None: it
    was not due) and the seconds before its retry (None: no retry to make)."""
    media = archiving.archive_one(media_id)
    if media is None or media.state != MediaState.PENDING or media.next_attempt_at is None:
        return media, None
    # The retry time is on the row too: if the retry job is lost, the sweep finds the row.
    return media, max(0.0, (media.next_attempt_at - timezone.now()).total_seconds())


def sweep(queue: Queue) -> int:
    """The periodic sweep on a queue: queue the notices nothing is working on any more,
    (ARCHIVE_MEDIA) the downloads that are due or were left by a dead worker, and count the
    dashboard's settled hours (``rollups.sweep``)."""
    restarted = sweeping.restart_stuck(restart=lambda notice_id: queue.enqueue_notice(notice_id))
    if topview_settings.archive_media:
        restarted += archiving.start_due(restart=lambda media_id: queue.enqueue_media(media_id))
    rollups.sweep(timezone.now())
    return restarted


class DrainWindow:
    """When a web process asks for a drain after storing a notice: at most one drain right
    away per ``DRAIN_WINDOW``, and one more due at the window's end for the notices stored
    meanwhile. One per process and queue (each wrapper keeps one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window_ends = 0.0  # time.monotonic() until which the last immediate drain covers us
        self.trailing_for = 0.0  # the window end a delayed drain is already due at

    def request(self, publish: Callable[[float | None], object]) -> None:
        """Publish a drain now (``publish(None)``), at the window's end (``publish(delay)``),
        or not at all when a drain already published covers this notice.

        Every notice committed before a drain's last claim is taken by that drain, so a
        notice needs a drain that starts after its commit: the immediate one of its window,
        or the one due at the window's end. The sweep stays the safety net.
        """
        now = time.monotonic()
        with self.lock:
            if now >= self.window_ends:
                self.window_ends = now + DRAIN_WINDOW
                delay: float | None = None
            elif self.trailing_for < self.window_ends:
                self.trailing_for = self.window_ends
                delay = self.window_ends - now
            else:
                return
        publish(delay)


_sending_windows: dict[str | None, DrainWindow] = {}
_sending_lock = threading.Lock()


def sending_window(account: str | None) -> DrainWindow:
    """The ``DrainWindow`` of an account's sender in this process: 10,000 single enqueues
    committed together ask for a handful of send jobs, not 10,000."""
    with _sending_lock:
        return _sending_windows.setdefault(account, DrainWindow())
