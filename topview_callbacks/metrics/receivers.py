"""Signal receivers that feed the instruments; ``connect`` runs from ``AppConfig.ready()``
when ``METRICS`` is on, in web processes and Celery workers alike.

A notice's bizType is free text from its sender: every label takes it through
``biz_types.bounded`` (the 14 known ones, else "other"), so a label never grows with it."""

from __future__ import annotations

from typing import Any

from topview_callbacks import signals
from topview_callbacks.biz_types import bounded
from topview_callbacks.metrics import instruments
from topview_callbacks.models import FINAL_TASK_STATUSES, Notice, NoticeState, SubmittedTask


def on_stored(sender: Any, notice: Notice, **kwargs: Any) -> None:
    instruments.notices_received.labels(
        bounded(notice.biz_type), notice.status, notice.source
    ).inc()


def on_redelivered(sender: Any, account: str, **kwargs: Any) -> None:
    instruments.notices_redelivered.labels(account).inc()


def on_rejected(sender: Any, reason: str, status: int, **kwargs: Any) -> None:
    instruments.notices_rejected.labels(reason, str(status)).inc()


def on_processed(sender: Any, notice: Notice, **kwargs: Any) -> None:
    outcome = "duplicate" if notice.state == NoticeState.DUPLICATE else "processed"
    instruments.notices_processed.labels(bounded(notice.biz_type), outcome).inc()
    if notice.processed_at is not None:
        seconds = (notice.processed_at - notice.received_at).total_seconds()
        instruments.processing_latency.labels(bounded(notice.biz_type)).observe(max(0.0, seconds))


def on_failed(sender: Any, notice: Notice, **kwargs: Any) -> None:
    instruments.notices_failed.labels(bounded(notice.biz_type)).inc()


def on_polled(sender: Any, task: SubmittedTask, answer: str, **kwargs: Any) -> None:
    instruments.task_polls.labels(bounded(task.biz_type), answer).inc()


def on_expired(sender: Any, task: SubmittedTask, **kwargs: Any) -> None:
    instruments.tasks_expired.labels(bounded(task.biz_type)).inc()


def on_status_changed(sender: Any, task: SubmittedTask, new_status: str, **kwargs: Any) -> None:
    if new_status not in FINAL_TASK_STATUSES or task.completed_at is None:
        return
    seconds = (task.completed_at - task.submitted_at).total_seconds()
    instruments.task_turnaround.labels(bounded(task.biz_type)).observe(max(0.0, seconds))


_RECEIVERS = (
    (signals.notice_stored, on_stored),
    (signals.notice_redelivered, on_redelivered),
    (signals.notice_rejected, on_rejected),
    (signals.notice_processed, on_processed),
    (signals.notice_processing_failed, on_failed),
    (signals.task_polled, on_polled),
    (signals.task_expired, on_expired),
    (signals.task_status_changed, on_status_changed),
)


def connect() -> None:
    """Connect every receiver (idempotent: each has a ``dispatch_uid``)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, dispatch_uid=f"topview_callbacks.metrics.{receiver.__name__}")


def disconnect() -> None:
    for signal, receiver in _RECEIVERS:
        signal.disconnect(dispatch_uid=f"topview_callbacks.metrics.{receiver.__name__}")
