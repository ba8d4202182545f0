"""Processing pending notices in batches: one queue message for many notices.

The drain jobs of both queues (Celery's ``tasks.drain_task`` and the Tasks framework's
``tasks_framework.drain``, through ``queues.run_drain``) call ``drain``; so can any other
queue or a loop of your own. Each notice is claimed on its own, so a batch never holds more
than one notice's row locks, a crash loses at most the notice in hand (the sweep restarts
it), and several workers draining at once never take the same notice. ``DrainWindow`` is the
web side: when a process that stored a notice asks for a drain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.utils import timezone

from topview_callbacks import outcomes
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.processing import process_claimed, process_notice


def drain(limit: int) -> list[Notice]:
    """Process up to ``limit`` pending notices, oldest first; returns them as they ended.

    On PostgreSQL each one is claimed, recorded and linked in one statement that skips the
    notices other workers hold (``FOR UPDATE SKIP LOCKED``), and the loop goes on until none
    is left or ``limit`` is reached, so notices stored while it runs join the batch. The
    processed mark of a notice rides on the statement that claims the next one: one
    statement and one commit per notice. Elsewhere the pending notices are listed once and
    processed one by one.
    """
    done: list[Notice] = []
    if not outcomes.supported():
        pending = Notice.objects.filter(state=NoticeState.PENDING).order_by("received_at", "id")
        for notice_id in pending.values_list("pk", flat=True)[:limit]:
            notice = process_notice(notice_id)
            if notice is not None:
                done.append(notice)
        return done
    unmarked: list[Notice] = []  # at most one: receivers ran, mark not yet written
    mark_later = _later(unmarked)
    while len(done) < limit:
        previous = unmarked.pop() if unmarked else None
        try:
            claimed = outcomes.claim_next_and_record(marking=previous)
        except Exception:
            if previous is not None:  # the claim failed: the mark must not be lost with it
                outcomes.mark_processed(previous)
            raise
        if claimed is None:
            return done
        done.append(process_claimed(claimed, mark=mark_later))
    for notice in unmarked:
        outcomes.mark_processed(notice)
    return done


def _later(unmarked: list[Notice]) -> Callable[[Notice], None]:
    """A ``mark`` that leaves the processed mark to the drain's next statement."""

    def mark(notice: Notice) -> None:
        notice.state, notice.processed_at = NoticeState.PROCESSED, timezone.now()
        unmarked.append(notice)

    return mark


class DrainWindow:
    """When a process asks for a drain after committing a notice: at most one drain right
    away per ``BATCH_WINDOW``, and one more due at the window's end for the notices stored
    meanwhile. One per process and queue (the wrappers each keep one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window_ends = 0.0  # time.monotonic() until which the last immediate drain covers us
        self.trailing_for = 0.0  # the window end a delayed drain is already due at

    def request(self, window: float) -> float | None:
        """The delay in seconds of the drain to publish now (0.0: right away), or None when
        a drain already published covers this notice.

        Every notice committed before a drain's last claim is taken by that drain, so a
        notice needs a drain that starts after its commit: the immediate one of its window,
        or the one due at the window's end (published by the first notice that found the
        window taken), or that one if already published. The sweep stays the safety net
        for lost messages.
        """
        now = time.monotonic()
        with self.lock:
            if now >= self.window_ends:
                self.window_ends = now + window
                return 0.0
            if self.trailing_for < self.window_ends:
                self.trailing_for = self.window_ends
                return self.window_ends - now
            return None
