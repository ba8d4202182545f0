"""The sweep: an acknowledged notice is always processed eventually.

Finds notices nothing is working on any more (pending while the broker was down, processing
when the worker died, failed with attempts left but no retry coming) and runs them again
through ``processing.process_notice``. Called by the Celery periodic task
``topview_callbacks.sweep`` and the commands ``topview_sweep`` and ``topview_process_pending``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from topview_callbacks import signals
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.processing import process_notice

logger = logging.getLogger(__name__)


def _sweep_cutoff(older_than: timedelta | None) -> datetime:
    if older_than is None:
        older_than = timedelta(seconds=topview_settings.sweep_after)
    return timezone.now() - older_than


def stuck_notices(
    older_than: timedelta | None = None, *, pending_after: timedelta | None = None
) -> QuerySet[Notice]:
    """Notices processing (the worker died) for longer than ``older_than`` (``SWEEP_AFTER``),
    pending (the broker was down) for longer than ``pending_after`` (default: the same), or
    failed with attempts left and no attempt for ``RETRY_BACKOFF_MAX`` more than that (no
    retry is coming: its Celery message was lost, or nothing retries in this mode)."""
    cutoff = _sweep_cutoff(older_than)
    pending_cutoff = cutoff if pending_after is None else timezone.now() - pending_after
    retry_cutoff = cutoff - timedelta(seconds=topview_settings.retry_backoff_max)
    return Notice.objects.filter(
        Q(state=NoticeState.PENDING, received_at__lte=pending_cutoff)
        | Q(state=NoticeState.PROCESSING, processing_started_at__lt=cutoff)
        | Q(
            state=NoticeState.FAILED,
            attempts__lt=topview_settings.max_attempts,
            processing_started_at__lt=retry_cutoff,
        )
    )


def sweep(
    *,
    older_than: timedelta | None = None,
    pending_after: timedelta | None = None,
    limit: int = 1000,
    restart: Callable[[int], object] | None = None,
) -> int:
    """Restart ``stuck_notices`` (pending, processing, or failed with attempts left whose retry
    never came); returns how many.

    ``pending_after=timedelta(0)`` takes every pending notice at once (``PROCESSING="manual"``:
    ``manage.py topview_process_pending``). ``restart`` gets each notice id: the Celery sweep
    passes its ``enqueue_notice``; by default the notice is processed here. A notice stuck in
    processing after ``MAX_ATTEMPTS`` claims (processing it keeps killing the worker) is
    marked failed instead of restarted.
    """
    if older_than is None:
        older_than = timedelta(seconds=topview_settings.sweep_after)
    cutoff = _sweep_cutoff(older_than)
    abandoned = stuck_notices(older_than).filter(
        state=NoticeState.PROCESSING, attempts__gte=topview_settings.max_attempts
    )
    for notice in abandoned[:limit]:
        error = (
            f"Abandoned after {notice.attempts} attempts: the worker processing it "
            "stopped each time (killed, out of memory?)."
        )
        # The state guard makes this a no-op if a worker finished it meanwhile.
        if Notice.objects.filter(
            pk=notice.pk, state=NoticeState.PROCESSING, processing_started_at__lt=cutoff
        ).update(state=NoticeState.FAILED, last_error=error):
            logger.error(
                "Topview notice %s (%s %s, account %s): %s",
                notice.uuid,
                notice.biz_type,
                notice.task_id,
                notice.account,
                error,
                extra=notice.log_context(),
            )
            notice.state, notice.last_error = NoticeState.FAILED, error
            signals.send_lifecycle(
                signals.notice_processing_failed, sender=Notice, notice=notice, error=error
            )
    restarted = 0
    # Fewest attempts first: notices that keep failing (a spoofed one that verification never
    # confirms, a receiver that always raises) cannot starve new ones out of the batch.
    candidates = stuck_notices(older_than, pending_after=pending_after)
    for notice in candidates.order_by("attempts", "received_at")[:limit]:
        logger.warning(
            "Topview notice %s (%s %s, account %s) stuck %s since %s; restarting it",
            notice.uuid,
            notice.biz_type,
            notice.task_id,
            notice.account,
            notice.state,
            notice.processing_started_at or notice.received_at,
            extra=notice.log_context(),
        )
        if restart is not None:
            restart(notice.pk)
        else:
            process_notice(
                notice.pk,
                stale_after=older_than,
                retry_failed_below=topview_settings.max_attempts,
            )
        restarted += 1
    return restarted
