"""Pruning: delete old finished notices and tasks in short batches.

Called by ``manage.py topview_prune`` and the periodic ``prune`` job (Celery or Django Tasks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from topview_callbacks import partitions
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    FINAL_TASK_STATUSES,
    ArchivedMedia,
    Notice,
    NoticeState,
    RejectedDelivery,
    SubmittedTask,
    TaskStatus,
    archive_storage,
)

logger = logging.getLogger(__name__)

# Notices whose story is over; failed ones are kept longer, pending/processing never pruned.
PRUNABLE_STATES = (NoticeState.PROCESSED, NoticeState.DUPLICATE, NoticeState.IGNORED)
#: The per-minute counts of rejected deliveries are kept this many days (the health check
#: and the dashboard look at the last day; a month leaves room for an investigation).
REJECTIONS_KEPT_DAYS = 30


@dataclass(frozen=True)
class PruneResult:
    """How many rows ``prune`` deleted (and archived files, with ``delete_files``)."""

    notices: int
    failed_notices: int
    tasks: int
    rejections: int = 0  # per-minute rows of rejected deliveries
    files: int = 0
    kept_for_files: int = 0  # old tasks kept because they have archived files


def _delete_task_media(task_ids: list[int], delete_files: bool) -> int:
    """Delete the archived-media rows of these tasks, their stored files first when
    ``delete_files`` (each one logged); returns how many files were deleted."""
    deleted = 0
    rows = ArchivedMedia.objects.filter(task_id__in=task_ids)
    if delete_files:
        storage = archive_storage()
        for media in rows.exclude(file=""):
            storage.delete(str(media.file.name))
            logger.info(
                "Pruning deleted archived file %s (task %s)", media.file.name, media.task_id
            )
            deleted += 1
    rows.delete()
    return deleted


def _delete_in_batches(queryset: QuerySet[Any], batch_size: int) -> int:
    # Short statements, one per batch (each its own transaction in autocommit), so pruning a
    # big table never holds locks for long nor builds one huge transaction.
    deleted = 0
    model = queryset.model
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        _, per_model = model._default_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(model._meta.label, 0)


# What a dropped month keeps, in the DEFAULT partition: every notice not finished (pending,
# failed) ...
_KEEP = "state NOT IN ('processed', 'duplicate', 'ignored')"
# ... or, once failed notices of that month are past their retention too, the unfinished
# ones only (a failed notice whose retry is still to come included).
_KEEP_UNFINISHED = f"{_KEEP} AND NOT (state = 'failed' AND next_attempt_at IS NULL)"


def _drop_months(cutoff: datetime, failed_cutoff: datetime) -> tuple[int, datetime]:
    """Partitioned notices: drop the months wholly older than ``cutoff`` (rows to keep go
    to the DEFAULT partition first). How many notices went, and where the months left
    begin (every row before that is in the DEFAULT partition); unpartitioned: 0 and the
    end of time."""
    conn = partitions.notice_connection()
    if not partitions.enabled(conn):
        return 0, datetime.max.replace(tzinfo=dt_timezone.utc)
    dropped = sum(partitions.finish_gone(conn, gone) for gone in partitions.leftovers(conn))
    left = partitions.months(conn)
    while left and _start(left[0].end) <= cutoff:
        month = left.pop(0)
        keep = _KEEP if _start(month.end) > failed_cutoff else _KEEP_UNFINISHED
        dropped += partitions.drop_month(conn, month, keep_where=keep)
    return dropped, _start(left[0].start) if left else cutoff


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=dt_timezone.utc)


def prune(
    *,
    older_than: timedelta | None = None,
    failed_older_than: timedelta | None = None,
    batch_size: int = 1000,
    delete_files: bool = False,
) -> PruneResult:
    """Delete old finished notices, old failed ones, then final or expired tasks left without
    notices, and the counts of rejected deliveries older than ``REJECTIONS_KEPT_DAYS``.

    Defaults: ``PRUNE_AFTER_DAYS`` and ``PRUNE_FAILED_AFTER_DAYS``; failed notices are never
    pruned sooner than the others. Pending notices are never pruned. A task
    with archived files is kept, unless ``delete_files``: then its files are deleted from
    the storage (each logged) before its rows.
    """
    if older_than is None:
        older_than = timedelta(days=topview_settings.prune_after_days)
    if failed_older_than is None:
        failed_older_than = timedelta(days=topview_settings.prune_failed_after_days)
    failed_older_than = max(failed_older_than, older_than)
    now = timezone.now()
    dropped, months_left = _drop_months(now - older_than, now - failed_older_than)
    # Partitioned, rows are deleted one by one only before the first month left: the ones
    # kept in the DEFAULT partition when their month was dropped.
    notices = dropped + _delete_in_batches(
        Notice.objects.filter(
            state__in=PRUNABLE_STATES, received_at__lt=min(now - older_than, months_left)
        ),
        batch_size,
    )
    failed = _delete_in_batches(
        # A failed notice whose retry is still to come is kept, whatever its age.
        Notice.objects.filter(
            state=NoticeState.FAILED,
            next_attempt_at__isnull=True,
            received_at__lt=min(now - failed_older_than, months_left),
        ),
        batch_size,
    )
    # A final task keeps a late duplicate callback from firing again; once its notices are
    # gone (and it is as old as they were), it goes too. So does a task that expired without
    # an outcome, once it was submitted that long ago: no outcome comes after months.
    old_tasks = SubmittedTask.objects.filter(
        Q(status__in=FINAL_TASK_STATUSES, completed_at__lt=now - older_than)
        | Q(status=TaskStatus.EXPIRED, submitted_at__lt=now - older_than),
        notices__isnull=True,
    )
    with_files = old_tasks.filter(
        Exists(ArchivedMedia.objects.filter(task=OuterRef("pk")).exclude(file=""))
    )
    kept = 0 if delete_files else with_files.count()
    if not delete_files:
        # Archived files are what users paid for: never deleted unless asked to.
        old_tasks = old_tasks.exclude(pk__in=with_files.values("pk"))
    files = tasks = 0
    while ids := list(old_tasks.order_by().values_list("pk", flat=True)[:batch_size]):
        files += _delete_task_media(ids, delete_files)
        _, per_model = SubmittedTask.objects.filter(pk__in=ids).delete()
        tasks += per_model.get(SubmittedTask._meta.label, 0)
    rejections = _delete_in_batches(
        RejectedDelivery.objects.filter(minute__lt=now - timedelta(days=REJECTIONS_KEPT_DAYS)),
        batch_size,
    )
    result = PruneResult(
        notices=notices,
        failed_notices=failed,
        tasks=tasks,
        rejections=rejections,
        files=files,
        kept_for_files=kept,
    )
    logger.info(
        "Pruned %s notice(s), %s failed notice(s), %s task(s), %s archived file(s) and %s "
        "rejection count(s); kept %s task(s) for their archived files",
        result.notices,
        result.failed_notices,
        result.tasks,
        result.files,
        result.rejections,
        result.kept_for_files,
    )
    return result
