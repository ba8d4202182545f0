"""Recording an outcome on its task with the ORM: the portable path, on any database.

``outcomes`` does the same in one statement on PostgreSQL; ``processing`` picks the path.
A notice that cannot complete its task is marked here: duplicate (the task already had
its outcome) or ignored (the task is another account's, or the notice cannot be checked).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    ArchivedMedia,
    Notice,
    NoticeSource,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)

logger = logging.getLogger("topview_callbacks.processing")  # the pipeline's one logger


def record_outcome(notice: Notice) -> str | None:
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


def mark_ignored(notice: Notice, reason: str) -> None:
    """Keep the notice for the record, fire nothing, and say why (``last_error``)."""
    logger.warning("Topview notice %s ignored: %s", notice.uuid, reason, extra=notice.log_context())
    Notice.objects.filter(pk=notice.pk).update(
        state=NoticeState.IGNORED, last_error=reason, processed_at=timezone.now()
    )
    notice.state, notice.last_error = NoticeState.IGNORED, reason


def _mark_foreign(notice: Notice, task: SubmittedTask) -> None:
    # The Topview-Uid authenticated the sender as notice.account; a task of another account
    # is not theirs to complete, whatever taskId they name. The task is left untouched.
    mark_ignored(
        notice,
        f"The task {notice.biz_type} {notice.task_id} belongs to account {task.account!r}, "
        f"but the notice came with the Topview-Uid of account {notice.account!r}; "
        "nothing was recorded or fired.",
    )


def owned_by_another_account(notice: Notice) -> bool:
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
