"""Sending queued submissions to Topview: in order, each at most once, and never more
than MAX_UNFINISHED of an account's tasks unfinished there at once.

``send_queued`` is the one sender, whoever runs it (on commit, a Celery or Tasks job,
``topview_send_queued``). It takes one submission at a time: in a short transaction it
holds the account's lock (PostgreSQL: an advisory lock per account), counts the account's
unfinished tasks, and if a slot is free claims the oldest due queued row (``SELECT ...
FOR UPDATE SKIP LOCKED``) and marks it ``sending``, then commits and sends it. Two
senders at once therefore never exceed the cap, and never take the same row.

How a send ends:

- answered: ``submitted``, with Topview's task id and notice uuid;
- Topview busy (4007: too many unfinished tasks; 5003; 4100: credit not enough): back to
  ``queued`` with a backoff, and this pass stops (the next one is due then);
- refused (any other answer of Topview's): ``fail``, with Topview's code and message;
- answer lost after the request left (a timeout, a reset, a gateway's error page):
  ``uncertain``. Never resent by itself: the task may exist and cost credits. A person
  resends it or gives it up (``resend``, ``give_up``), or its callback resolves it
  (``match_callback``: the marker in its noticeUrl). A sender that died mid-send leaves
  its row ``sending``; the next pass turns it uncertain once its answer cannot come any
  more (twice ``REQUEST_TIMEOUT``, and ``LOST_AFTER_MARGIN``).
"""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Case, F, Min, Q, TextField, Value, When
from django.utils import timezone

from topview_callbacks import biz_types, lifecycle, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.client.queueing import UNSENT_PREFIX
from topview_callbacks.client.records import without_secrets
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import (
    TopviewAPIError,
    TopviewConfigurationError,
    TopviewConnectionError,
)
from topview_callbacks.models import UNFINISHED_TASK_STATUSES, SubmittedTask, TaskStatus

logger = logging.getLogger(__name__)

#: The query-string parameter of noticeUrl that carries a queued submission's marker.
SUBMISSION_PARAM = "topview_submission"
#: Topview's answers that mean "not now, nothing was created": the submission waits.
BUSY_CODES = frozenset({"4007", "5003", "4100"})
#: Backoff after a busy answer: Topview's guidance for 4007 is about 30 s; doubled on each
#: further busy answer of the same submission, capped.
BACKOFF_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 600.0
#: A row ``sending`` for longer than twice REQUEST_TIMEOUT (connecting, then reading) plus
#: this lost its sender.
LOST_AFTER_MARGIN = timedelta(seconds=10)


@dataclass
class SendReport:
    """What one ``send_queued`` did. ``retry_in``: seconds until a queued submission is
    due again (a backoff), None when none waits for time (only for a slot, or nothing)."""

    sent: int = 0
    busy: int = 0
    refused: int = 0
    uncertain: int = 0
    retry_in: float | None = None

    def add(self, other: SendReport) -> None:
        self.sent += other.sent
        self.busy += other.busy
        self.refused += other.refused
        self.uncertain += other.uncertain
        if other.retry_in is not None:
            self.retry_in = (
                other.retry_in if self.retry_in is None else min(self.retry_in, other.retry_in)
            )


def send_queued(account: str | None = None) -> SendReport:
    """Send the due queued submissions of ``account`` (None: of every account) while
    slots are free. Call it outside a transaction: each claim commits before its send."""
    report = SendReport()
    names = [account] if account is not None else queued_accounts()
    for name in names:
        try:
            client = TopviewClient(name)
        except TopviewConfigurationError:
            logger.exception("Queued Topview submissions of account %r cannot be sent", name)
            continue
        report.add(_send_account(client))
    return report


def queued_accounts() -> list[str]:
    """The accounts that have queued submissions."""
    rows = SubmittedTask.objects.filter(status=TaskStatus.QUEUED).order_by()
    return sorted(set(rows.values_list("account", flat=True).distinct()))


def _send_account(client: TopviewClient) -> SendReport:
    name = client.account.name
    report = SendReport(uncertain=expire_lost(name))
    while True:
        task = claim(name, client.account.max_unfinished)
        if task is None:
            break
        ending = _send(client, task)
        if ending == "busy":
            report.busy += 1
            report.retry_in = _due_in(name)
            return report
        setattr(report, ending, getattr(report, ending) + 1)
    report.retry_in = _due_in(name)
    return report


def claim(account: str, cap: int) -> SubmittedTask | None:
    """Take the account's oldest due queued submission for sending, if fewer than ``cap``
    of its tasks are unfinished; committed ``sending`` when this returns."""
    using = router.db_for_write(SubmittedTask)
    now = timezone.now()
    with transaction.atomic(using=using):
        _lock_account(using, account)
        tasks = SubmittedTask.objects.using(using).order_by()
        if tasks.filter(account=account, status__in=UNFINISHED_TASK_STATUSES).count() >= cap:
            return None
        due = (
            tasks.filter(account=account, status=TaskStatus.QUEUED)
            .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        task_id = due.first()
        if task_id is None:
            return None
        tasks.filter(pk=task_id).update(
            status=TaskStatus.SENDING,
            submitted_at=now,
            send_attempts=F("send_attempts") + 1,
            updated_at=now,
        )
        return tasks.get(pk=task_id)


def _lock_account(using: str, account: str) -> None:
    """PostgreSQL: senders of one account take turns until their transaction ends (the
    count and the claim must see each other's). SQLite runs one writer at a time."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"topview_callbacks.send:{account}"],
            )


def _send(client: TopviewClient, task: SubmittedTask) -> str:
    """Send one claimed submission; how it ended: "sent", "busy", "refused", "uncertain"."""
    spec = biz_types.spec_for(task.biz_type)
    body = dict(task.request_payload)
    url = body.pop("noticeUrl", None) or client.account.notice_url
    if url:
        body["noticeUrl"] = with_marker(str(url), task.submission)
    if spec is None:  # only a bizType a later version removed could get here
        return _refuse(task, f"Unknown bizType {task.biz_type!r}: no submit endpoint.")
    try:
        result = client.request("POST", spec.submit_path, json=body)
    except TopviewConnectionError as exc:
        return _lose(task, str(exc))
    except TopviewAPIError as exc:
        if exc.code in BUSY_CODES:
            return _wait(task, exc)
        if (
            exc.http_status is not None
            and exc.http_status >= 500
            and exc.code == str(exc.http_status)
        ):
            # Not Topview's envelope: a proxy's error page; Topview may have accepted it.
            return _lose(task, str(exc))
        return _refuse(task, f"Topview refused the submission ({exc.code}): {exc}")
    task_id = result.get("taskId") if isinstance(result, dict) else None
    if not task_id:
        return _lose(task, f"Topview answered success without a taskId: {result!r}")
    _answered(task, str(task_id), result, body)
    return "sent"


def with_marker(url: str, marker: str) -> str:
    """``url`` with the submission's marker in its query string (``SUBMISSION_PARAM``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(k, v) for k, v in query if k != SUBMISSION_PARAM] + [(SUBMISSION_PARAM, marker)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _answered(
    task: SubmittedTask, task_id: str, result: dict[str, Any], body: dict[str, Any]
) -> None:
    """Record Topview's answer: the row becomes the task. A row for that task id made
    meanwhile by its callback (one that came without the marker) takes the submission's
    owner, reference and request instead, and the queued row goes."""
    now = timezone.now()
    values: dict[str, Any] = {
        "task_id": task_id,
        "notice_uuid": str(result.get("noticeUuid") or ""),
        "request_payload": without_secrets(body),
        "next_poll_at": now + topview_settings.poll_after(task.biz_type),
        "updated_at": now,
    }
    rows = SubmittedTask.objects.order_by()
    try:
        with transaction.atomic():
            updated = rows.filter(
                pk=task.pk, status__in=(TaskStatus.SENDING, TaskStatus.UNCERTAIN)
            ).update(status=TaskStatus.SUBMITTED, **values)
    except IntegrityError:
        updated = 0
        _merge_into_existing(task, task_id, values)
    if updated:
        logger.info("Sent queued Topview submission %s: %s %s", task.pk, task.biz_type, task_id)


def _merge_into_existing(task: SubmittedTask, task_id: str, values: dict[str, Any]) -> None:
    with transaction.atomic():
        existing = (
            SubmittedTask.objects.select_for_update()
            .filter(biz_type=task.biz_type, task_id=task_id)
            .first()
        )
        if existing is None:
            return
        existing.owner_content_type_id = task.owner_content_type_id
        existing.owner_object_id = task.owner_object_id
        existing.reference = task.reference
        existing.submission = task.submission
        existing.request_payload = values["request_payload"]
        existing.notice_uuid = existing.notice_uuid or values["notice_uuid"]
        existing.save()
        SubmittedTask.objects.filter(pk=task.pk).delete()
    logger.info("Queued Topview submission %s: its task %s had come back already", task.pk, task_id)


def _wait(task: SubmittedTask, error: TopviewAPIError) -> str:
    delay = backoff(task.send_attempts)
    SubmittedTask.objects.filter(pk=task.pk, status=TaskStatus.SENDING).update(
        status=TaskStatus.QUEUED,
        send_after=timezone.now() + timedelta(seconds=delay),
        error_message=f"Topview answered {error.code} ({error}); sent again in {delay:.0f} s.",
    )
    log = logger.error if error.out_of_credit else logger.info
    log(
        "Topview answered %s to queued submission %s (%s); it waits %.0f s",
        error.code,
        task.pk,
        error,
        delay,
    )
    return "busy"


def backoff(attempts: int) -> float:
    """Seconds a submission waits after its ``attempts``-th busy answer, with jitter."""
    delay = min(BACKOFF_SECONDS * 2.0 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return delay / 2 + random.uniform(0, delay / 2)


def _refuse(task: SubmittedTask, error: str) -> str:
    now = timezone.now()
    if SubmittedTask.objects.filter(pk=task.pk, status=TaskStatus.SENDING).update(
        status=TaskStatus.FAIL, error_message=error, completed_at=now, updated_at=now
    ):
        logger.error("Queued Topview submission %s refused: %s", task.pk, error)
        task.refresh_from_db()
        lifecycle.send(signals.submission_refused, sender=SubmittedTask, task=task, error=error)
    return "refused"


def _lose(task: SubmittedTask, error: str) -> str:
    message = (
        f"The answer to the submit was lost ({error}): the task may exist at Topview. "
        "Not sent again by itself: resend it or give it up in the admin."
    )
    if SubmittedTask.objects.filter(pk=task.pk, status=TaskStatus.SENDING).update(
        status=TaskStatus.UNCERTAIN, error_message=message, updated_at=timezone.now()
    ):
        logger.warning("Queued Topview submission %s is uncertain: %s", task.pk, error)
        task.refresh_from_db()
        lifecycle.send(signals.submission_uncertain, sender=SubmittedTask, task=task, error=message)
    return "uncertain"


def expire_lost(account: str) -> int:
    """Rows ``sending`` whose sender died mid-send (its answer cannot come any more)
    become uncertain; how many did."""
    cutoff = timezone.now() - timedelta(seconds=2 * topview_settings.request_timeout)
    cutoff -= LOST_AFTER_MARGIN
    stale = SubmittedTask.objects.filter(
        account=account, status=TaskStatus.SENDING, submitted_at__lt=cutoff
    )
    count = 0
    for task in stale:
        if _lose(task, "its sender stopped while sending it") == "uncertain":
            count += 1
    return count


def _due_in(account: str) -> float | None:
    """Seconds until the account's next backed-off submission is due (None: none waits)."""
    later: datetime | None = SubmittedTask.objects.filter(
        account=account, status=TaskStatus.QUEUED, send_after__gt=timezone.now()
    ).aggregate(at=Min("send_after"))["at"]
    if later is None:
        return None
    return max(0.0, float((later - timezone.now()).total_seconds()))


def match_callback(marker: str, account: str, biz_type: str, task_id: str) -> bool:
    """A callback carried a submission's marker: a submission still ``sending`` or
    ``uncertain`` becomes that task (its outcome is then recorded on it as usual). True
    when one did."""
    now = timezone.now()
    resolved = f"Resolved by its callback at {now:%Y-%m-%d %H:%M:%S %Z}."
    using = router.db_for_write(SubmittedTask)
    # Every callback of an enqueued task comes here: alone, the UPDATE is atomic by itself
    # (one round trip); inside a caller's transaction, a savepoint keeps a conflict from
    # breaking it.
    guard = (
        transaction.atomic(using=using)
        if connections[using].in_atomic_block
        else contextlib.nullcontext()
    )
    try:
        with guard:
            return bool(
                SubmittedTask.objects.using(using)
                .filter(
                    submission=marker,
                    account=account,
                    biz_type=biz_type,
                    status__in=(TaskStatus.SENDING, TaskStatus.UNCERTAIN),
                )
                .update(
                    task_id=task_id,
                    status=TaskStatus.SUBMITTED,
                    next_poll_at=now + topview_settings.poll_after(biz_type),
                    updated_at=now,
                    resolution=Case(
                        When(status=TaskStatus.UNCERTAIN, then=Value(resolved)),
                        default=F("resolution"),
                        output_field=TextField(),
                    ),
                )
            )
    except IntegrityError:
        logger.warning(
            "The callback of %s %s names queued submission %s, but that task is recorded "
            "already; the submission stays as it is",
            biz_type,
            task_id,
            marker,
        )
        return False


def resend(task_ids: list[int], by: str) -> int:
    """Queue uncertain submissions again, with a new marker (a person's choice: the task
    may exist twice); how many were."""
    count = 0
    now = timezone.now()
    for task in SubmittedTask.objects.filter(pk__in=task_ids, status=TaskStatus.UNCERTAIN):
        marker = _new_marker()
        note = f"Resent by {by} at {now:%Y-%m-%d %H:%M:%S %Z} (was marker {task.submission})."
        count += SubmittedTask.objects.filter(pk=task.pk, status=TaskStatus.UNCERTAIN).update(
            status=TaskStatus.QUEUED,
            submission=marker,
            task_id=UNSENT_PREFIX + marker,
            send_after=None,
            error_message="",
            resolution=_joined(task.resolution, note),
            updated_at=now,
        )
    return count


def give_up(task_ids: list[int], by: str) -> int:
    """End uncertain submissions as ``fail`` (a person's choice); how many were."""
    count = 0
    now = timezone.now()
    note = f"Given up by {by} at {now:%Y-%m-%d %H:%M:%S %Z}."
    for task in SubmittedTask.objects.filter(pk__in=task_ids, status=TaskStatus.UNCERTAIN):
        count += SubmittedTask.objects.filter(pk=task.pk, status=TaskStatus.UNCERTAIN).update(
            status=TaskStatus.FAIL,
            completed_at=now,
            resolution=_joined(task.resolution, note),
            updated_at=now,
        )
    return count


def _new_marker() -> str:
    return uuid.uuid4().hex


def _joined(before: str, note: str) -> str:
    return f"{before}\n{note}" if before else note
