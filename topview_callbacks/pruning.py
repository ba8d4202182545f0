"""Pruning: delete old finished notices and tasks in short batches.

Called by ``manage.py topview_prune`` and the Celery periodic task ``topview_callbacks.prune``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    FINAL_TASK_STATUSES,
    Notice,
    NoticeState,
    RejectedDelivery,
    SubmittedTask,
    TaskStatus,
)

logger = logging.getLogger(__name__)

# Notices whose story is over; failed ones are kept longer, pending/processing never pruned.
PRUNABLE_STATES = (NoticeState.PROCESSED, NoticeState.DUPLICATE, NoticeState.IGNORED)


@dataclass(frozen=True)
class PruneResult:
    """How many rows ``prune`` deleted."""

    notices: int
    failed_notices: int
    tasks: int
    rejections: int = 0  # per-minute rows of rejected deliveries


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


def prune(
    *,
    older_than: timedelta | None = None,
    failed_older_than: timedelta | None = None,
    batch_size: int = 1000,
) -> PruneResult:
    """Delete old finished notices, old failed ones, then final or expired tasks left without
    notices, and the counts of rejected deliveries older than ``PRUNE_REJECTIONS_AFTER_DAYS``.

    Defaults: ``PRUNE_AFTER_DAYS`` and ``PRUNE_FAILED_AFTER_DAYS``; failed notices are never
    pruned sooner than the others. Pending and processing notices are never pruned.
    """
    if older_than is None:
        older_than = timedelta(days=topview_settings.prune_after_days)
    if failed_older_than is None:
        failed_older_than = timedelta(days=topview_settings.prune_failed_after_days)
    failed_older_than = max(failed_older_than, older_than)
    now = timezone.now()
    notices = _delete_in_batches(
        Notice.objects.filter(state__in=PRUNABLE_STATES, received_at__lt=now - older_than),
        batch_size,
    )
    failed = _delete_in_batches(
        Notice.objects.filter(state=NoticeState.FAILED, received_at__lt=now - failed_older_than),
        batch_size,
    )
    # A final task keeps a late duplicate callback from firing again; once its notices are
    # gone (and it is as old as they were), it goes too. So does a task that expired without
    # an outcome, once it was submitted that long ago: no outcome comes after months.
    tasks = _delete_in_batches(
        SubmittedTask.objects.filter(
            Q(status__in=FINAL_TASK_STATUSES, completed_at__lt=now - older_than)
            | Q(status=TaskStatus.EXPIRED, submitted_at__lt=now - older_than),
            notices__isnull=True,
        ),
        batch_size,
    )
    rejections = _delete_in_batches(
        RejectedDelivery.objects.filter(
            minute__lt=now - timedelta(days=topview_settings.prune_rejections_after_days)
        ),
        batch_size,
    )
    result = PruneResult(notices=notices, failed_notices=failed, tasks=tasks, rejections=rejections)
    logger.info(
        "Pruned %s notice(s), %s failed notice(s), %s task(s) and %s rejection count(s)",
        result.notices,
        result.failed_notices,
        result.tasks,
        result.rejections,
    )
    return result
