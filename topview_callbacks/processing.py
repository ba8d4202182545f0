"""The one pipeline every notice goes through, whoever calls it.

The view (after commit), the Celery task, the admin actions and the management
commands all call these plain functions. Nothing here imports Celery or HTTP requests.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from topview_callbacks import signals
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus

logger = logging.getLogger(__name__)

# States an operator may replay from: everything but a notice being processed right now.
REPLAYABLE_STATES = (
    NoticeState.PENDING,
    NoticeState.PROCESSED,
    NoticeState.FAILED,
    NoticeState.DUPLICATE,
    NoticeState.IGNORED,
)


def dispatch(notice_id: int) -> None:
    """Start processing a newly stored notice as ``PROCESSING`` says. Never raises.

    Called on commit by the view. An error here leaves the notice pending, where
    ``process_pending`` (the sweep) finds it: the notice is stored, so nothing is lost.
    """
    mode = topview_settings.processing
    try:
        if mode == "inline":
            process_notice(notice_id)
        elif mode == "celery":
            # Imported here because tasks.py is the only module that imports Celery.
            from topview_callbacks.tasks import enqueue_notice

            enqueue_notice(notice_id)
    except Exception:
        logger.exception(
            "Could not start processing Topview notice id=%s; it stays pending", notice_id
        )


def _claim(notice_id: int, states: Iterable[str], stale_before: timezone.datetime | None) -> bool:
    """Atomically move the notice to PROCESSING; False if another worker has it or it is done."""
    claimable = Q(state__in=list(states))
    if stale_before is not None:
        claimable |= Q(state=NoticeState.PROCESSING, processing_started_at__lt=stale_before)
    updated = Notice.objects.filter(claimable, pk=notice_id).update(
        state=NoticeState.PROCESSING,
        attempts=F("attempts") + 1,
        processing_started_at=timezone.now(),
    )
    return updated == 1


def _record_outcome(notice: Notice) -> bool:
    """Link the notice to its task and record the outcome; False if it was already recorded.

    The task row is locked, so of two notices for one task processed at once, one records
    the outcome and the other sees a final task. Final statuses never change.
    """
    with transaction.atomic():
        task, _ = SubmittedTask.objects.select_for_update().get_or_create(
            biz_type=notice.biz_type,
            task_id=notice.task_id,
            defaults={
                "account": notice.account,
                "notice_uuid": notice.uuid if notice.source == "callback" else "",
                "status": TaskStatus.RUNNING,
                "submitted_at": notice.received_at,
            },
        )
        notice.submitted_task = task
        if task.is_final:
            Notice.objects.filter(pk=notice.pk).update(
                submitted_task=task, state=NoticeState.DUPLICATE, processed_at=timezone.now()
            )
            notice.state = NoticeState.DUPLICATE
            return False
        task.status = TaskStatus(notice.status)
        task.result = notice.result
        task.error_message = notice.error_message
        task.completed_at = timezone.now()
        task.next_poll_at = None
        task.notice_uuid = task.notice_uuid or (notice.uuid if notice.source == "callback" else "")
        task.save(
            update_fields=[
                "status",
                "result",
                "error_message",
                "completed_at",
                "next_poll_at",
                "notice_uuid",
                "updated_at",
            ]
        )
        Notice.objects.filter(pk=notice.pk).update(submitted_task=task)
        return True


def _send_outcome_signals(notice: Notice) -> None:
    kwargs = {
        "notice": notice,
        "task": notice.submitted_task,
        "result": notice.result,
        "succeeded": notice.succeeded,
    }
    signals.notice_received.send(sender=Notice, **kwargs)
    biz_signal = signals.by_biz_type.get(notice.biz_type)
    if biz_signal is not None:
        biz_signal.send(sender=Notice, **kwargs)


def process_notice(
    notice_id: int,
    *,
    claim_from: Iterable[str] = (NoticeState.PENDING,),
    stale_after: timedelta | None = None,
) -> Notice | None:
    """Record a notice's outcome on its task and fire the signals, once.

    Returns the notice in its new state, or None when it could not be claimed (another
    worker has it, or it is no longer in one of ``claim_from``). With ``stale_after``, a
    notice stuck in ``processing`` longer than that (a worker died) is claimed too.
    """
    stale_before = timezone.now() - stale_after if stale_after is not None else None
    if not _claim(notice_id, claim_from, stale_before):
        return None
    notice = Notice.objects.select_related("submitted_task").get(pk=notice_id)
    # A notice already linked recorded its outcome on an earlier attempt (which then
    # failed, or is being replayed): only the receivers run again.
    if notice.submitted_task_id is None and not _record_outcome(notice):
        logger.info(
            "Topview notice %s: the outcome of %s %s was already delivered; not fired again",
            notice.uuid,
            notice.biz_type,
            notice.task_id,
        )
        return notice
    try:
        _send_outcome_signals(notice)
    except Exception:
        error = traceback.format_exc()
        logger.exception(
            "A receiver failed on Topview notice %s (%s %s, account %s)",
            notice.uuid,
            notice.biz_type,
            notice.task_id,
            notice.account,
        )
        Notice.objects.filter(pk=notice_id).update(state=NoticeState.FAILED, last_error=error)
        notice.state, notice.last_error = NoticeState.FAILED, error
        signals.notice_processing_failed.send_robust(sender=Notice, notice=notice, error=error)
        return notice
    processed_at = timezone.now()
    Notice.objects.filter(pk=notice_id).update(
        state=NoticeState.PROCESSED, processed_at=processed_at
    )
    notice.state, notice.processed_at = NoticeState.PROCESSED, processed_at
    return notice


def replay_notice(notice_id: int) -> Notice | None:
    """Run a stored notice through the receivers again (an operator's explicit choice)."""
    return process_notice(notice_id, claim_from=REPLAYABLE_STATES)


def process_pending(*, limit: int | None = None, stale_after: timedelta | None = None) -> int:
    """Process notices left pending (and, with ``stale_after``, stuck ones); returns how many."""
    due = Q(state=NoticeState.PENDING)
    if stale_after is not None:
        due |= Q(
            state=NoticeState.PROCESSING,
            processing_started_at__lt=timezone.now() - stale_after,
        )
    ids = Notice.objects.filter(due).order_by("received_at").values_list("pk", flat=True)
    if limit is not None:
        ids = ids[:limit]
    done = 0
    for notice_id in list(ids):
        if process_notice(notice_id, stale_after=stale_after) is not None:
            done += 1
    return done
