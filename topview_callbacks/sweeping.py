"""The sweep: an acknowledged notice is always processed eventually.

Finds the notices nothing is working on any more (stored while the broker was down, left
by a process that died, a retry whose message was lost) and starts them again: through a
queue (``restart``), or here, where the sweep then runs every notice that is due (inline
and manual sites: it is also how their failed notices are retried). Called by the queues'
periodic ``sweep`` tasks (``jobs.sweep``) and the commands ``topview_sweep`` and
``topview_process_pending``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from topview_callbacks import partitions
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.processing import process_due

logger = logging.getLogger(__name__)

BATCH = 100


def stuck_notices(older_than: timedelta | None = None) -> QuerySet[Notice]:
    """Notices due for longer than ``older_than`` (default ``SWEEP_AFTER``) that no attempt
    started in that time: pending since they arrived, or since their retry came due."""
    if older_than is None:
        older_than = timedelta(seconds=topview_settings.sweep_after)
    cutoff = timezone.now() - older_than
    return Notice.objects.filter(
        Q(state=NoticeState.PENDING, next_attempt_at__isnull=True, received_at__lte=cutoff)
        # One branch per state, so that PostgreSQL reads them from the due notices' index.
        | Q(state=NoticeState.PENDING, next_attempt_at__lte=cutoff)
        | Q(state=NoticeState.FAILED, next_attempt_at__lte=cutoff),
        Q(claim="") | Q(claimed_at__lte=cutoff),
    )


def restart_stuck(
    *,
    older_than: timedelta | None = None,
    limit: int = 1000,
    restart: Callable[[int], object] | None = None,
) -> int:
    """Start the ``stuck_notices`` again through ``restart`` (a queue's, given each
    notice's id); without ``restart``, run here every notice that is due, stuck or not.
    Returns how many notices were started. Partitioned notices get their next months'
    partitions here too, when missing."""
    if partitions.enabled(partitions.notice_connection()):
        partitions.create_ahead(now=timezone.now())
    if restart is None:
        return run_due(limit=limit)
    stuck = stuck_notices(older_than).order_by("attempts", "received_at")
    # Fewest attempts first: notices that keep failing (a spoofed one that verification
    # never confirms, a receiver that always raises) cannot starve new ones out of a run.
    notice_ids = list(stuck.values_list("pk", flat=True)[:limit])
    for notice_id in notice_ids:
        logger.warning(
            "Topview notice id=%s: nothing is working on it; restarting it",
            notice_id,
            extra={"topview_notice_id": notice_id},
        )
        restart(notice_id)
    return len(notice_ids)


def run_due(*, limit: int = 1000) -> int:
    """Run every due notice here, a batch per transaction, up to ``limit``; returns how
    many ran."""
    total = 0
    while total < limit:
        size = min(BATCH, limit - total)
        batch = process_due(limit=size)
        total += batch.claimed
        if batch.claimed < size:
            break
    return total
