"""The pipeline every notice goes through, whoever calls it: one transaction per attempt.

An attempt records a notice's outcome on its task, runs the receivers of the outcome
signals and marks the notice, in one transaction: the receivers' database work commits
with the outcome or not at all, and what they hand to ``transaction.on_commit()`` runs
only once it committed. A receiver that raises rolls the attempt back; the notice is then
recorded failed, with the traceback, in a transaction of its own, and retried after a
backoff (``retrying``) until MAX_ATTEMPTS. A process that dies mid-attempt leaves nothing
half done: its transaction never commits and its row lock goes with its connection.

- ``receive`` (``PROCESSING="inline"``): a new notice stored, recorded and fired in the
  request's one transaction, committed before the acknowledgement.
- ``store``: a new notice stored pending, for a queue, a command or the sweep.
- ``process_due``: an attempt at the due notices, or at one (``claims``): the queues'
  jobs, the commands, the sweep, a replay.

Lifecycle signals (stored, status changed, processed, failed) go out after the commit.
``dispatch`` picks who runs what; this package knows no queue, no view, no scheduler.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from topview_callbacks import lifecycle, signals
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.processing import claims, functions, recording, verification
from topview_callbacks.processing.recording import Attempt, Outcome
from topview_callbacks.processing.sql import is_postgresql, write_connection
from topview_callbacks.retrying import retry_in

logger = logging.getLogger(__name__)

__all__ = [
    "REPLAYABLE_STATES",
    "Batch",
    "Received",
    "process_due",
    "receive",
    "replay_notice",
    "send_outcome_signals",
    "store",
]

# States an operator may replay from: not "duplicate", whose task's outcome was delivered
# by another notice (firing it would send a second, possibly contradicting, outcome).
REPLAYABLE_STATES = (
    NoticeState.PENDING,
    NoticeState.PROCESSED,
    NoticeState.FAILED,
    NoticeState.IGNORED,
)


@dataclass(frozen=True)
class Received:
    """What a delivery did: ``notice`` is the new notice in the state its attempt left it
    (inline) or pending; None when its uuid was stored already. ``pending_id``: then, the
    stored notice's id when it is still pending (nothing finished it: start it again)."""

    notice: Notice | None
    pending_id: int | None = None

    @property
    def repeated(self) -> bool:
        return self.notice is None


@dataclass(frozen=True)
class Batch:
    """What one ``process_due`` did: the notices it ran, as they ended, and how many it
    started on (the ones given up after MAX_ATTEMPTS included)."""

    notices: list[Notice]
    claimed: int


class _ReceiverFailed(Exception):
    """A receiver of the outcome signals raised: the attempt's transaction rolls back."""

    def __init__(self, notice: Notice, error: str) -> None:
        super().__init__(error)
        self.notice, self.error = notice, error


def send_outcome_signals(notice: Notice, task: SubmittedTask | None) -> None:
    """Send ``task_outcome``, then the notice's bizType signal, to their receivers."""
    kwargs = {
        "notice": notice,
        "task": task,
        "result": notice.result,
        "succeeded": notice.succeeded,
    }
    signals.task_outcome.send(sender=Notice, **kwargs)
    biz_signal = signals.by_biz_type.get(notice.biz_type)
    if biz_signal is not None:
        biz_signal.send(sender=Notice, **kwargs)


def receive(values: dict[str, Any]) -> Received:
    """``PROCESSING="inline"``: store a new notice, record its outcome and run its receivers
    in one transaction, committed when this returns. ``values``: the notice's fields."""
    conn = write_connection()
    values = {**values, "received_at": values.get("received_at") or timezone.now()}
    try:
        try:
            received = _receive_and_fire(conn, values)
        except functions.StoredConcurrently:
            # Rolled back whole; the second call finds the uuid stored.
            received = _receive_and_fire(conn, values)
        if isinstance(received, recording.Repeated):
            return _repeated(received)
        notice, outcome = received
    except _ReceiverFailed as failed:
        # Nothing of the first attempt was kept: the notice is stored again, failed.
        with transaction.atomic(using=conn.alias):
            received = recording.receive(conn, values, _failed(1, failed.error))
        if isinstance(received, recording.Repeated):  # stored meanwhile by a concurrent one
            return _repeated(received)
        notice, outcome = received
    _announce(notice, outcome, new=True)
    return Received(notice)


def _receive_and_fire(
    conn: BaseDatabaseWrapper, values: dict[str, Any]
) -> tuple[Notice, Outcome] | recording.Repeated:
    with transaction.atomic(using=conn.alias):
        received = recording.receive(conn, values, Attempt())
        if not isinstance(received, recording.Repeated) and received[1].fires:
            _fire(conn, received[0], received[1].task)
    return received


def _repeated(found: recording.Repeated) -> Received:
    return Received(None, found.notice_id if found.pending else None)


def store(values: dict[str, Any]) -> Received:
    """Store a new notice, pending (committed when this returns, unless the caller holds a
    transaction); ``Received(None)`` when its uuid was stored already."""
    conn = write_connection()
    values = {**values, "received_at": values.get("received_at") or timezone.now()}
    notice_id = recording.store(conn, values)
    if notice_id is None:
        return Received(None)
    notice = Notice(id=notice_id, **values, state=NoticeState.PENDING)
    _stored(notice)
    return Received(notice)


def process_due(*, limit: int = 100, notice_id: int | None = None) -> Batch:
    """One attempt at up to ``limit`` due notices, oldest first, or at ``notice_id`` only
    (if it is due). Call it outside a transaction: the attempts are counted first,
    durably (see ``claims``)."""
    conn = write_connection()
    claim = claims.start(conn, limit=limit, notice_id=notice_id)
    _report_abandoned(conn, claim.abandoned)
    claimed = len(claim.notice_ids) + len(claim.abandoned)
    if not claim.notice_ids:
        return Batch([], claimed)
    if topview_settings.verify_with_query:
        verification.verify(conn, claims.held(conn, claim))
    done: list[Notice] = []
    while True:
        try:
            done += _attempt(conn, claim)
            return Batch(done, claimed)
        except _ReceiverFailed as failed:
            done.append(_record_failure(conn, claim, failed))


def replay_notice(notice_id: int) -> Notice | None:
    """Run a stored notice through its receivers again (an operator's explicit choice),
    here and now, with fresh attempts; None when it cannot be replayed (a duplicate, or
    an attempt holds it right now)."""
    if not reset_for_replay(notice_id):
        return None
    done = process_due(notice_id=notice_id, limit=1).notices
    return done[0] if done else None


def reset_for_replay(notice_id: int) -> bool:
    """Make a notice due again with fresh attempts (replay); False when it is a duplicate
    or an attempt holds it right now."""
    now = timezone.now()
    return bool(
        Notice.objects.filter(pk=notice_id, state__in=REPLAYABLE_STATES)
        .exclude(claim__gt="", claimed_at__gt=now - claims.CLAIM_GAP)
        .update(
            state=NoticeState.PENDING,
            attempts=0,
            next_attempt_at=None,
            claim="",
            claimed_at=None,
        )
    )


def _attempt(conn: BaseDatabaseWrapper, claim: claims.Claim) -> list[Notice]:
    """One transaction: lock the claim's notices, record their outcomes (sent together),
    fire each, then finish them all (their states written together, before the commit)."""
    finished: list[tuple[Notice, Outcome, Attempt]] = []
    with transaction.atomic(using=conn.alias):
        held = claims.lock(conn, claim)
        for notice, outcome in zip(held, recording.record_all(conn, held), strict=True):
            if outcome.fires:
                _fire(conn, notice, outcome.task)
            finished.append((notice, outcome, Attempt()))
        recording.finish_all(conn, finished)
    for notice, outcome, _attempt_ending in finished:
        _announce(notice, outcome)
    return [notice for notice, _outcome, _attempt_ending in finished]


def _record_failure(
    conn: BaseDatabaseWrapper, claim: claims.Claim, failed: _ReceiverFailed
) -> Notice:
    """The attempt rolled back for ``failed.notice``: record its outcome and its failure,
    alone (the claim's other notices are attempted again)."""
    with transaction.atomic(using=conn.alias):
        held = [n for n in claims.lock(conn, claim) if n.pk == failed.notice.pk]
        if not held:
            # Another attempt took the notice over meanwhile (see claims.CLAIM_GAP): it
            # runs the receivers again, and records what happens then.
            return failed.notice
        notice = held[0]
        outcome = recording.record(conn, notice)
        recording.finish(conn, notice, outcome, _failed(notice.attempts, failed.error))
    _announce(notice, outcome)
    return notice


def _fire(conn: BaseDatabaseWrapper, notice: Notice, task: SubmittedTask | None) -> None:
    """The outcome signals, in the attempt's transaction; a receiver that raised, that
    swallowed a database error (PostgreSQL then refuses to commit) or that closed the
    connection (the transaction went with it) fails the attempt."""
    try:
        send_outcome_signals(notice, task)
        broken = _transaction_broken(conn)
        if broken:
            raise RuntimeError(broken)
    except Exception as exc:
        error = traceback.format_exc()
        logger.exception(
            "A receiver failed on Topview notice %r (%s %s, account %s)",
            notice.uuid,
            notice.biz_type,
            notice.task_id,
            notice.account,
            extra=notice.log_context(),
        )
        raise _ReceiverFailed(notice, error) from exc


def _transaction_broken(conn: BaseDatabaseWrapper) -> str:
    """Why the attempt's transaction cannot commit after its receivers ran ("" if it can).
    A connection closed in it took the transaction along: Django would end the atomic
    block without an error, and nothing, the notice included, would have been written."""
    if conn.closed_in_transaction:
        return (
            "A receiver closed the database connection: the attempt's transaction went "
            "with it. Leave closing connections to Django."
        )
    if not is_postgresql(conn):
        return ""
    raw = conn.connection
    info = getattr(raw, "info", None)  # psycopg 3
    status = info.transaction_status if info is not None else raw.get_transaction_status()
    if int(status) != 3:  # INERROR in both psycopg 3 and psycopg2
        return ""
    return (
        "A receiver caught a database error and went on: PostgreSQL refuses to commit the "
        "transaction. Let the error propagate, or wrap the receiver's own query in "
        "transaction.atomic()."
    )


def _failed(attempts: int, error: str) -> Attempt:
    """How an attempt whose receiver raised ends: retried after a backoff, or not."""
    delay = retry_in(attempts)
    retry_at = None if delay is None else timezone.now() + timedelta(seconds=delay)
    return Attempt(NoticeState.FAILED, error, retry_at)


def _announce(notice: Notice, outcome: Outcome, *, new: bool = False) -> None:
    """The lifecycle signals of an attempt that committed (``new``: it also stored it)."""
    if new:
        _stored(notice)
    if outcome.previous_status is not None and outcome.task is not None:
        lifecycle.send(
            signals.task_status_changed,
            sender=SubmittedTask,
            task=outcome.task,
            old_status=outcome.previous_status,
            new_status=outcome.task.status,
            notice=notice,
        )
    if notice.state == NoticeState.FAILED:
        lifecycle.send(
            signals.notice_processing_failed, sender=Notice, notice=notice, error=notice.last_error
        )
    elif notice.state == NoticeState.IGNORED:
        logger.warning(
            "Topview notice %r ignored: %s",
            notice.uuid,
            notice.last_error,
            extra=notice.log_context(),
        )
    else:
        if notice.state == NoticeState.DUPLICATE:
            logger.info(
                "Topview notice %r: the outcome of %s %s was already delivered; not fired again",
                notice.uuid,
                notice.biz_type,
                notice.task_id,
                extra=notice.log_context(),
            )
        lifecycle.send(signals.notice_processed, sender=Notice, notice=notice)


def _stored(notice: Notice) -> None:
    if signals.notice_stored.has_listeners(Notice):
        lifecycle.send(signals.notice_stored, sender=Notice, notice=notice)


def _report_abandoned(conn: BaseDatabaseWrapper, notice_ids: list[int]) -> None:
    # Read where they were written: a router may send reads to a replica behind it.
    for notice in Notice.objects.using(conn.alias).filter(pk__in=notice_ids):
        logger.error(
            "Topview notice %r (%s %s, account %s): %s",
            notice.uuid,
            notice.biz_type,
            notice.task_id,
            notice.account,
            notice.last_error,
            extra=notice.log_context(),
        )
        lifecycle.send(
            signals.notice_processing_failed, sender=Notice, notice=notice, error=notice.last_error
        )
