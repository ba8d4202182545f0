"""Processing pending notices in batches: one queue message for many notices.

The Celery drain task (``tasks.drain_task``) calls ``drain``; so can any other queue or a
loop of your own. Each notice is claimed on its own, so a batch never holds more than one
notice's row locks, a crash loses at most the notice in hand (the sweep restarts it), and
several workers draining at once never take the same notice.
"""

from __future__ import annotations

from topview_callbacks import outcomes
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.processing import process_claimed, process_notice


def drain(limit: int) -> list[Notice]:
    """Process up to ``limit`` pending notices, oldest first; returns them as they ended.

    On PostgreSQL each one is claimed, recorded and linked in one statement that skips the
    notices other workers hold (``FOR UPDATE SKIP LOCKED``), and the loop goes on until none
    is left or ``limit`` is reached, so notices stored while it runs join the batch.
    Elsewhere the pending notices are listed once and processed one by one.
    """
    done: list[Notice] = []
    if outcomes.supported():
        while len(done) < limit:
            claimed = outcomes.claim_next_and_record()
            if claimed is None:
                break
            done.append(process_claimed(claimed))
        return done
    pending = Notice.objects.filter(state=NoticeState.PENDING).order_by("received_at", "id")
    for notice_id in pending.values_list("pk", flat=True)[:limit]:
        notice = process_notice(notice_id)
        if notice is not None:
            done.append(notice)
    return done
