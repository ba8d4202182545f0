"""The one pipeline every notice goes through, whoever calls it.

``scheduling`` (for the view), the queue wrappers, the admin actions and the management
commands all call these plain functions. Nothing here knows how it was called: no queue,
no HTTP request. Polling (``polling.py``) and the sweep (``sweeping.py``) build on it.
Recording an outcome is ``outcomes`` (PostgreSQL, one statement) or ``recording`` (the
ORM); ``verification`` is VERIFY_WITH_QUERY.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from topview_callbacks import outcomes, signals
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.recording import owned_by_another_account, record_outcome
from topview_callbacks.verification import needs_verification, verified

logger = logging.getLogger(__name__)

# States an operator may replay from. Not "processing" (running right now) and not
# "duplicate": its task's outcome was delivered by another notice, and firing this one
# would send a second, possibly contradicting, outcome.
REPLAYABLE_STATES = (
    NoticeState.PENDING,
    NoticeState.PROCESSED,
    NoticeState.FAILED,
    NoticeState.IGNORED,
)


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
    retry_failed_below: int | None = None,
) -> Notice | None:
    """Record a notice's outcome on its task and fire the signals, once.

    Returns the notice in its new state, or None when it could not be claimed (another
    worker has it, or it is no longer in one of ``claim_from``). With ``stale_after``, a
    notice stuck in ``processing`` longer than that (a worker died) is claimed too; with
    ``retry_failed_below``, a ``failed`` one with fewer attempts than that (a retry).
    """
    stale_before = timezone.now() - stale_after if stale_after is not None else None
    if outcomes.supported():
        # PostgreSQL: claim, record and link in one statement (outcomes.py).
        condition = Notice.objects.claimable_sql(
            outcomes.connection(), claim_from, stale_before, retry_failed_below
        )
        claimed = None
        if condition is not None:
            claimed = outcomes.claim_and_record(notice_id, *condition)
        return None if claimed is None else process_claimed(claimed)
    # Claiming, reading and recording the outcome share one transaction (one commit), except
    # when VERIFY_WITH_QUERY must ask Topview first: no row lock is held across that call.
    with transaction.atomic():
        notice = Notice.objects.claim(
            notice_id, claim_from, stale_before, retry_failed_below=retry_failed_below
        )
        if notice is None:
            return None
        # A notice already linked recorded its outcome on an earlier attempt (which then
        # failed, or is being replayed): only the receivers run again, with that task.
        linked_task_id = notice.submitted_task_id
        to_record = linked_task_id is None
        if linked_task_id is not None:
            notice.submitted_task = SubmittedTask.objects.get(pk=linked_task_id)
        old_status = None
        if to_record and not needs_verification(notice):
            old_status, to_record = record_outcome(notice), False
    if to_record:
        if owned_by_another_account(notice) or not verified(notice):
            # Ignored, or VERIFY_WITH_QUERY could not confirm it: pending (retried later)
            # or, after MAX_ATTEMPTS, failed. Nothing was recorded or fired.
            return notice
        with transaction.atomic():
            old_status = record_outcome(notice)
    return _deliver(notice, old_status)


def process_claimed(
    claimed: outcomes.Claimed, *, mark: Callable[[Notice], None] | None = None
) -> Notice:
    """Fire the signals for a notice ``outcomes`` claimed (and, mostly, recorded) already.

    When the statement recorded nothing (the task already had its outcome, or belongs to
    another account), the portable path decides which: duplicate or ignored. ``mark``
    replaces ``outcomes.mark_processed`` for a notice whose receivers all ran (the drain
    defers it to its next statement).
    """
    notice, old_status = claimed.notice, claimed.old_status
    if notice.submitted_task_id is None:
        with transaction.atomic():
            old_status = record_outcome(notice)
    return _deliver(notice, old_status, mark)


def _deliver(
    notice: Notice,
    old_status: str | None,
    mark: Callable[[Notice], None] | None = None,
) -> Notice:
    """Send the signals for a claimed notice whose outcome is recorded; mark the result."""
    if notice.state == NoticeState.IGNORED:
        return notice
    if notice.state == NoticeState.DUPLICATE:
        logger.info(
            "Topview notice %s: the outcome of %s %s was already delivered; not fired again",
            notice.uuid,
            notice.biz_type,
            notice.task_id,
            extra=notice.log_context(),
        )
        signals.send_lifecycle(signals.notice_processed, sender=Notice, notice=notice)
        return notice
    if old_status is not None and old_status != notice.status:
        signals.send_lifecycle(
            signals.task_status_changed,
            sender=SubmittedTask,
            task=notice.submitted_task,
            old_status=old_status,
            new_status=notice.status,
            notice=notice,
        )
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
            extra=notice.log_context(),
        )
        Notice.objects.filter(pk=notice.pk).update(state=NoticeState.FAILED, last_error=error)
        notice.state, notice.last_error = NoticeState.FAILED, error
        signals.send_lifecycle(
            signals.notice_processing_failed, sender=Notice, notice=notice, error=error
        )
        return notice
    (mark or outcomes.mark_processed)(notice)
    signals.send_lifecycle(signals.notice_processed, sender=Notice, notice=notice)
    return notice


def announce_stored(notice_id: int, notice: Notice | None = None) -> None:
    """Send ``notice_stored`` for a notice just stored (by the endpoint or by a poll)."""
    # Fetching the row costs a query on the request path: only when someone listens.
    if not signals.notice_stored.has_listeners(Notice):
        return
    if notice is None:
        notice = Notice.objects.filter(pk=notice_id).first()
    if notice is not None:
        signals.send_lifecycle(signals.notice_stored, sender=Notice, notice=notice)


def replay_notice(notice_id: int) -> Notice | None:
    """Run a stored notice through the receivers again (an operator's explicit choice)."""
    return process_notice(notice_id, claim_from=REPLAYABLE_STATES)
