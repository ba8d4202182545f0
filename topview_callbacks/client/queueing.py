"""Queueing submissions in the caller's transaction, for ``sending`` to send after commit.

A queued submission is a ``SubmittedTask`` row with status ``queued``: its parameters in
``request_payload``, its owner and reference, and a marker (``submission``) that the
sender adds to its ``noticeUrl``. Until Topview answers, its ``task_id`` is a placeholder
(``UNSENT_PREFIX`` and the marker), unique like a real one. Nothing is sent here: once the
caller's transaction commits, ``submissions_queued`` goes out and the app's receiver
starts the sender where ``PROCESSING`` says; a rolled-back transaction leaves nothing.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models, router, transaction
from django.utils import timezone

from topview_callbacks import lifecycle, signals
from topview_callbacks.client.records import SECRET_PARAMS
from topview_callbacks.exceptions import TopviewError
from topview_callbacks.models import SubmittedTask, TaskStatus, owner_fields

#: The placeholder task id of a submission not answered yet starts with this.
UNSENT_PREFIX = "unsent:"
#: Rows per INSERT of ``enqueue_many``: 10,000 submissions are ten statements.
BATCH_SIZE = 1000


@dataclass(frozen=True)
class Submission:
    """One submission for ``TopviewClient.enqueue_many``: Topview's parameters, and what
    the task is for (``owner``: any saved model instance; ``reference``: free text)."""

    params: Mapping[str, Any] = field(default_factory=dict)
    owner: models.Model | None = None
    reference: str = ""


def queued_row(
    account: str, biz_type: str, body: dict[str, Any], owner: models.Model | None, reference: str
) -> SubmittedTask:
    """An unsaved row for one submission (``body``: what will be POSTed, no noticeUrl)."""
    secrets = sorted(key for key in body if key.lower() in SECRET_PARAMS)
    if secrets:
        raise TopviewError(
            f"A queued submission is stored until it is sent: {', '.join(secrets)} cannot be "
            "one of its parameters (credentials come from the account's settings)."
        )
    marker = uuid.uuid4().hex
    return SubmittedTask(
        account=account,
        biz_type=biz_type,
        task_id=UNSENT_PREFIX + marker,
        submission=marker,
        status=TaskStatus.QUEUED,
        request_payload=body,
        reference=reference,
        submitted_at=timezone.now(),
        **owner_fields(owner),
    )


def queue(rows: list[SubmittedTask]) -> list[SubmittedTask]:
    """Save queued ``rows`` (of one account) in the current transaction, in batches, and
    announce them once it commits."""
    if not rows:
        return rows
    using = router.db_for_write(SubmittedTask)
    with transaction.atomic(using=using):
        if len(rows) == 1:
            rows[0].save(using=using)
        else:
            rows = SubmittedTask.objects.using(using).bulk_create(rows, batch_size=BATCH_SIZE)
        transaction.on_commit(functools.partial(_announce, rows[0].account, len(rows)), using=using)
    return rows


def _announce(account: str, count: int) -> None:
    lifecycle.send(signals.submissions_queued, sender=SubmittedTask, account=account, count=count)


def bodies(
    defaults: Iterable[tuple[str, Any]], submissions: Iterable[Submission]
) -> Iterable[tuple[dict[str, Any], Submission]]:
    """Each submission's body: the bizType's defaults, then its own parameters."""
    base = dict(defaults)
    for submission in submissions:
        yield {**base, **submission.params}, submission
