"""Processing pending notices in batches: one queue message for many notices.

The Celery drain task (``tasks.drain_task``) calls ``drain``; so can any other queue or a
loop of your own. Each notice is claimed on its own, so a batch never holds more than one
notice's row locks, a crash loses at most the notice in hand (the sweep restarts it), and
several workers draining at once never take the same notice.
"""

from __future__ import annotations

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
        done.append(process_claimed(claimed, mark=_later(unmarked)))
    for notice in unmarked:
        outcomes.mark_processed(notice)
    return done


def _later(unmarked: list[Notice]) -> Callable[[Notice], None]:
    """A ``mark`` that leaves the processed mark to the drain's next statement."""

    def mark(notice: Notice) -> None:
        notice.state, notice.processed_at = NoticeState.PROCESSED, timezone.now()
        unmarked.append(notice)

    return mark
