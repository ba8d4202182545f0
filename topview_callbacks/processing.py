"""The one pipeline every notice goes through, whoever calls it.

``scheduling`` (for the view), the queue wrappers, the admin actions and the management
commands all call these plain functions. Nothing here knows how it was called: no queue,
no HTTP request. Polling (``polling.py``) and the sweep (``sweeping.py``) build on it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from topview_callbacks import biz_types, outcomes, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import TopviewError
from topview_callbacks.models import (
    FINAL_TASK_STATUSES,
    ArchivedMedia,
    Notice,
    NoticeSource,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)

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


def _record_outcome(notice: Notice) -> str | None:
    """Link the notice to its task and record the outcome on it, in the caller's transaction.

    Returns the task's status before this outcome, or None when the task already had a
    final outcome (the notice is then marked duplicate). The task row is locked, so of two
    notices for one task processed at once, one records the outcome and the other sees a
    final task. Final statuses never change.
    """
    outcome = {
        "status": TaskStatus(notice.status),
        "result": notice.result,
        "error_message": notice.error_message,
        "completed_at": timezone.now(),
        "next_poll_at": None,
    }
    callback_uuid = notice.uuid if notice.source == NoticeSource.CALLBACK else ""
    with transaction.atomic(savepoint=False):
        # Locked lookup; a task first seen in its notice is created with the outcome
        # (get_or_create settles a race with a concurrent creator).
        task, created = SubmittedTask.objects.select_for_update().get_or_create(
            biz_type=notice.biz_type,
            task_id=notice.task_id,
            defaults={
                **outcome,
                "account": notice.account,
                "notice_uuid": callback_uuid,
                "submitted_at": notice.received_at,
            },
        )
        old_status: str = TaskStatus.RUNNING  # a task first seen in its notice was running
        if not created:
            if task.account != notice.account:
                _mark_foreign(notice, task)
                return None
            if task.is_final:
                _mark_duplicate(notice, task)
                return None
            old_status = task.status
            for field, value in outcome.items():
                setattr(task, field, value)
            task.notice_uuid = task.notice_uuid or callback_uuid
            task.save(update_fields=[*outcome, "notice_uuid", "updated_at"])
        Notice.objects.filter(pk=notice.pk).update(submitted_task=task)
        notice.submitted_task = task
        if topview_settings.archive_media and task.status == TaskStatus.SUCCESS:
            # In the outcome's own transaction: every path that records an outcome (callback,
            # poll, sweep, replay) leaves the rows archiving works from; with VERIFY_WITH_QUERY
            # they come from the verified result. The downloads happen later, elsewhere.
            ArchivedMedia.objects.add_for_task(task, notice)
    return str(old_status)


def _mark_ignored(notice: Notice, reason: str) -> None:
    """Keep the notice for the record, fire nothing, and say why (``last_error``)."""
    logger.warning("Topview notice %s ignored: %s", notice.uuid, reason, extra=notice.log_context())
    Notice.objects.filter(pk=notice.pk).update(
        state=NoticeState.IGNORED, last_error=reason, processed_at=timezone.now()
    )
    notice.state, notice.last_error = NoticeState.IGNORED, reason


def _mark_foreign(notice: Notice, task: SubmittedTask) -> None:
    # The Topview-Uid authenticated the sender as notice.account; a task of another account
    # is not theirs to complete, whatever taskId they name. The task is left untouched.
    _mark_ignored(
        notice,
        f"The task {notice.biz_type} {notice.task_id} belongs to account {task.account!r}, "
        f"but the notice came with the Topview-Uid of account {notice.account!r}; "
        "nothing was recorded or fired.",
    )


def _owned_by_another_account(notice: Notice) -> bool:
    """Checked before a verification query, so a foreign notice costs no call to Topview."""
    task = SubmittedTask.objects.filter(biz_type=notice.biz_type, task_id=notice.task_id).first()
    if task is None or task.account == notice.account:
        return False
    _mark_foreign(notice, task)
    return True


def _mark_duplicate(notice: Notice, task: SubmittedTask) -> None:
    now = timezone.now()
    Notice.objects.filter(pk=notice.pk).update(
        submitted_task=task, state=NoticeState.DUPLICATE, processed_at=now
    )
    notice.submitted_task, notice.state, notice.processed_at = task, NoticeState.DUPLICATE, now


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
        if to_record and not _needs_verification(notice):
            old_status, to_record = _record_outcome(notice), False
    if to_record:
        if _owned_by_another_account(notice) or not _verified(notice):
            # Ignored, or VERIFY_WITH_QUERY could not confirm it: pending (retried later)
            # or, after MAX_ATTEMPTS, failed. Nothing was recorded or fired.
            return notice
        with transaction.atomic():
            old_status = _record_outcome(notice)
    return _deliver(notice, old_status)


def process_claimed(claimed: outcomes.Claimed) -> Notice:
    """Fire the signals for a notice ``outcomes`` claimed (and, mostly, recorded) already.

    When the statement recorded nothing (the task already had its outcome, or belongs to
    another account), the portable path decides which: duplicate or ignored.
    """
    notice, old_status = claimed.notice, claimed.old_status
    if notice.submitted_task_id is None:
        with transaction.atomic():
            old_status = _record_outcome(notice)
    return _deliver(notice, old_status)


def _deliver(notice: Notice, old_status: str | None) -> Notice:
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
    outcomes.mark_processed(notice)
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


def _needs_verification(notice: Notice) -> bool:
    # Every callback, whatever its bizType: one the table does not know (or spelled in
    # another case) cannot be verified, and must not be fired unverified either.
    return topview_settings.verify_with_query and notice.source == NoticeSource.CALLBACK


def _verified(notice: Notice) -> bool:
    """VERIFY_WITH_QUERY: replace a callback's claim with Topview's answer to a query (only
    called for a notice that ``_needs_verification``).

    False when the notice cannot be confirmed. A bizType without a known query endpoint
    can never be: the notice is ignored. When the query fails or the task is not final
    there, the notice goes back to pending (the sweep or a redelivery retries it) and the
    task is left open, so a later delivery of the outcome, by callback or by poll, is not
    blocked; after MAX_ATTEMPTS attempts it is marked failed instead.
    """
    if biz_types.spec_for(notice.biz_type) is None:
        _mark_ignored(
            notice,
            f"VERIFY_WITH_QUERY is on and bizType {notice.biz_type!r} has no known query "
            "endpoint, so the notice cannot be verified; nothing was recorded or fired.",
        )
        return False
    try:
        result = TopviewClient(notice.account).query(notice.biz_type, notice.task_id)
        state = biz_types.task_status(notice.biz_type, result)
        if state not in FINAL_TASK_STATUSES:
            raise TopviewError(f"the query endpoint reports the task as {state!r}")
    except Exception as exc:  # whatever went wrong, the notice must stay retryable
        _not_verified(notice, exc)
        return False
    notice.status = state
    if isinstance(result, dict):
        notice.result = result
        notice.error_message = str(result.get("errorMsg") or "")
    Notice.objects.filter(pk=notice.pk).update(
        status=notice.status, result=notice.result, error_message=notice.error_message
    )
    return True


def _not_verified(notice: Notice, exc: Exception) -> None:
    message = f"Not confirmed by Topview's query endpoint (VERIFY_WITH_QUERY): {exc}"
    max_attempts = topview_settings.max_attempts
    if notice.attempts < max_attempts:
        logger.warning("Topview notice %s: %s", notice.uuid, message, extra=notice.log_context())
        Notice.objects.filter(pk=notice.pk).update(state=NoticeState.PENDING, last_error=message)
        notice.state, notice.last_error = NoticeState.PENDING, message
        return
    # A spoofed notice is never confirmed: without a cap it would cost a query on every
    # sweep forever. Failed with attempts spent, the sweep leaves it; replay stays possible.
    message = f"Gave up after {notice.attempts} attempts (MAX_ATTEMPTS). {message}"
    logger.error("Topview notice %s: %s", notice.uuid, message, extra=notice.log_context())
    Notice.objects.filter(pk=notice.pk).update(state=NoticeState.FAILED, last_error=message)
    notice.state, notice.last_error = NoticeState.FAILED, message
    signals.send_lifecycle(
        signals.notice_processing_failed, sender=Notice, notice=notice, error=message
    )
