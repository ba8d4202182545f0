"""Polling fallback: every submitted task gets its outcome, by callback or by query.

Topview's callbacks may never come. ``reconcile`` queries tasks whose notice is overdue and
turns a final answer into a ``source="poll"`` notice, stored and then processed like a
callback (here, or by a queue: ``start``), so each outcome still fires once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from topview_callbacks import biz_types, lifecycle, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import TopviewConfigurationError, TopviewError
from topview_callbacks.models import (
    FINAL_TASK_STATUSES,
    OPEN_TASK_STATUSES,
    POLLABLE_TASK_STATUSES,
    Notice,
    NoticeSource,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)
from topview_callbacks.processing import process_due, store

logger = logging.getLogger(__name__)

#: What starts a stored notice's processing: a queue's (given the notice's id); None
#: processes it where the poll runs.
Start = Callable[[int], object] | None
#: At most this many tasks are queried by one reconcile pass (the periodic job comes back
#: for the rest; ``topview_reconcile --limit`` chooses another number).
RECONCILE_BATCH = 200
# The exponent of POLL_BACKOFF stops growing here, long after POLL_MAX_INTERVAL is reached.
_MAX_BACKOFF_STEPS = 32


@dataclass
class ReconcileReport:
    """What one ``reconcile`` pass did."""

    polled: int = 0  # tasks queried
    delivered: int = 0  # final outcomes found by polling and processed
    unfinished: int = 0  # tasks Topview still reports as init/running
    errors: int = 0  # queries that failed (logged; the task is tried again later)
    expired: int = 0  # tasks marked expired
    misconfigured: int = 0  # tasks skipped: their account is not (or no longer) in the settings


def _notices_in_flight() -> Exists:
    # A notice that is pending, or failed with a retry to come, will record its task's
    # outcome (the sweep sees to that). One that recorded it made the task final, which
    # excludes it anyway; ignored or abandoned ones must not keep the task from being
    # polled and expired.
    return Exists(
        Notice.objects.filter(
            Q(state=NoticeState.PENDING)
            | Q(state=NoticeState.FAILED, next_attempt_at__isnull=False),
            biz_type=OuterRef("biz_type"),
            task_id=OuterRef("task_id"),
        )
    )


def due_tasks(now: datetime | None = None) -> QuerySet[SubmittedTask]:
    """Unfinished tasks whose poll time has come and that have no notice in flight.

    A task with a notice still pending or processing is left alone: its outcome came.
    """
    now = now or timezone.now()
    return (
        SubmittedTask.objects.filter(status__in=OPEN_TASK_STATUSES)
        .filter(Q(next_poll_at__lte=now) | Q(next_poll_at__isnull=True))
        .exclude(_notices_in_flight())
        .order_by(F("next_poll_at").asc(nulls_first=True), "pk")
    )


def _poll_interval(task: SubmittedTask) -> timedelta:
    base = topview_settings.poll_after(task.biz_type).total_seconds()
    steps = min(task.poll_count + 1, _MAX_BACKOFF_STEPS)
    seconds = base * topview_settings.poll_backoff**steps
    return min(timedelta(seconds=seconds), topview_settings.poll_max_interval)


def _poll_uuid(task: SubmittedTask, *, own: bool = False) -> str:
    # The callback's own uuid when Topview told us, so a later callback is the same row;
    # ``own``: a uuid of this task alone (that one is stored under another task).
    if task.notice_uuid and not own:
        return task.notice_uuid
    uuid = f"poll:{task.biz_type}:{task.task_id}"
    if len(uuid) > 128:  # the column's length
        uuid = "poll:" + hashlib.sha256(uuid.encode()).hexdigest()
    return uuid


def poll_task(
    task: SubmittedTask,
    *,
    client: TopviewClient | None = None,
    now: datetime | None = None,
    start: Start = None,
) -> Notice | None:
    """Query one task now. A final answer becomes a ``source="poll"`` notice, processed once
    (here, or by ``start``).

    Returns that notice (as its attempt left it, or pending when ``start`` has it), or None
    when the task is unfinished, already polled by someone else meanwhile, or already has
    its outcome. Raises ``TopviewError`` if the query fails.
    """
    now = now or timezone.now()
    # Optimistic claim on poll_count: two reconcile passes never query one task twice.
    claimed = SubmittedTask.objects.filter(
        pk=task.pk, poll_count=task.poll_count, status__in=POLLABLE_TASK_STATUSES
    ).update(
        last_polled_at=now, poll_count=F("poll_count") + 1, next_poll_at=now + _poll_interval(task)
    )
    if not claimed:
        return None
    client = client or TopviewClient(task.account)
    try:
        result = client.query(task.biz_type, task.task_id)
        state = biz_types.task_status(task.biz_type, result)
    except Exception:
        lifecycle.send(signals.task_polled, sender=SubmittedTask, task=task, answer="error")
        raise
    answer = str(state) if state in FINAL_TASK_STATUSES else "running"
    lifecycle.send(signals.task_polled, sender=SubmittedTask, task=task, answer=answer)
    if state not in FINAL_TASK_STATUSES:
        if task.status == TaskStatus.SUBMITTED:
            SubmittedTask.objects.filter(pk=task.pk, status=TaskStatus.SUBMITTED).update(
                status=TaskStatus.RUNNING
            )
        return None
    error_message = result.get("errorMsg") if isinstance(result, dict) else None
    values: dict[str, Any] = {
        "account": task.account,
        "biz_type": task.biz_type,
        "task_id": task.task_id,
        "status": state,
        "error_message": str(error_message or ""),
        "result": result if isinstance(result, dict) else None,
        "raw_body": json.dumps(result, ensure_ascii=False, separators=(",", ":")),
        "headers": {},
        "source": NoticeSource.POLL,
    }
    uuid = _poll_uuid(task)
    stored = store({"uuid": uuid, **values}).notice
    if stored is None:
        if _delivers_this_task(uuid, task):
            # The callback with this uuid was stored meanwhile: its processing delivers it.
            return None
        # That uuid is stored under another task (Topview reused a noticeUuid, or a sender
        # used it first) or was ignored: it will never record this task's outcome, and
        # returning here would leave the task open and polled until TASK_MAX_AGE. Topview
        # just answered for this very task, so its outcome is delivered under its own uuid.
        logger.warning(
            "Topview task %s %s: notice uuid %s is stored under another task or was "
            "ignored; delivering the polled outcome as its own notice",
            task.biz_type,
            task.task_id,
            uuid,
        )
        stored = store({"uuid": _poll_uuid(task, own=True), **values}).notice
        if stored is None:
            return None  # that notice is stored already: its processing delivers it
    if start is not None:
        start(stored.pk)
        return stored
    done = process_due(notice_id=stored.pk, limit=1).notices
    return done[0] if done else stored


def _delivers_this_task(uuid: str, task: SubmittedTask) -> bool:
    """Whether the stored notice ``uuid`` records (or recorded) this task's outcome."""
    return (
        Notice.objects.filter(uuid=uuid, biz_type=task.biz_type, task_id=task.task_id)
        .exclude(state=NoticeState.IGNORED)
        .exists()
    )


def expire_tasks(now: datetime | None = None) -> int:
    """Mark tasks older than TASK_MAX_AGE with no outcome expired; sends ``task_expired``."""
    now = now or timezone.now()
    cutoff = now - topview_settings.task_max_age
    candidates = (
        SubmittedTask.objects.filter(status__in=OPEN_TASK_STATUSES, submitted_at__lt=cutoff)
        .exclude(_notices_in_flight())
        .values_list("pk", flat=True)
    )
    expired = 0
    for pk in list(candidates):
        # Conditional: a notice processed meanwhile made the task final; leave it so.
        if not SubmittedTask.objects.filter(pk=pk, status__in=OPEN_TASK_STATUSES).update(
            status=TaskStatus.EXPIRED,
            next_poll_at=None,
            error_message=f"No outcome within TASK_MAX_AGE ({topview_settings.task_max_age}).",
        ):
            continue
        expired += 1
        task = SubmittedTask.objects.get(pk=pk)
        logger.warning("Topview task %s %s expired without an outcome", task.biz_type, task.task_id)
        lifecycle.send(signals.task_expired, sender=SubmittedTask, task=task)
    return expired


def reconcile(
    *, limit: int | None = None, now: datetime | None = None, start: Start = None
) -> ReconcileReport:
    """One pass of the polling fallback: query overdue tasks, then expire the hopeless ones.
    The outcomes found are processed here, or by ``start`` (a queue).

    Safe to run from several places at once (cron, a queue's periodic job, the admin): each task is
    claimed before it is queried, and an outcome is delivered once whichever way it came.
    """
    now = now or timezone.now()
    report = ReconcileReport()
    clients: dict[str, TopviewClient] = {}
    batch = limit if limit is not None else RECONCILE_BATCH
    misconfigured: set[str] = set()
    for task in list(due_tasks(now)[:batch]):
        if task.account in misconfigured:
            report.misconfigured += 1
            continue
        try:
            client = clients.get(task.account) or clients.setdefault(
                task.account, TopviewClient(task.account)
            )
        except TopviewConfigurationError as exc:
            # Not Topview's fault and not transient: say so loudly, once per account and
            # pass, and leave its tasks as they are until the settings are fixed.
            misconfigured.add(task.account)
            report.misconfigured += 1
            logger.error("Cannot poll the tasks of Topview account %r: %s", task.account, exc)
            continue
        report.polled += 1
        try:
            notice = poll_task(task, client=client, now=now, start=start)
        except TopviewError as exc:
            report.errors += 1
            logger.warning(
                "Could not poll Topview task %s %s (account %s): %s",
                task.biz_type,
                task.task_id,
                task.account,
                exc,
            )
            continue
        if notice is None:
            report.unfinished += 1
        else:
            report.delivered += 1
    report.expired = expire_tasks(now)
    logger.info("Topview reconcile: %s", report)
    return report
