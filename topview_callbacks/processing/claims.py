"""Attempts: which notices an attempt holds, and how it takes them.

An attempt is counted and marked with a claim token by one statement that commits at
once (``start``), before any receiver runs: so a notice whose attempts keep killing their
process is seen, and given up after MAX_ATTEMPTS. The claim itself is the row lock the
processing transaction then takes on the marked rows (``lock``): a process that dies
releases it with its connection, and the notice can be attempted again at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.processing.sql import (
    LOCK_CLAIMED,
    RELEASE,
    START_ATTEMPTS,
    execute,
    fetchall,
    instance,
    moment,
    statement,
)

# Rows an attempt marked this recently are left to it: it is about to lock them. A process
# that dies in that moment leaves its notices to the next attempt after this delay.
CLAIM_GAP = timedelta(seconds=0.5)
# With VERIFY_WITH_QUERY the rows are held without a lock while Topview is asked, for up
# to REQUEST_TIMEOUT: they are left to their attempt that long, and this much more.
VERIFY_MARGIN = timedelta(seconds=5)

ABANDONED = (
    "Given up: MAX_ATTEMPTS attempts were started and none finished; the process running "
    "it stopped each time (killed, out of memory?). Replay it once the cause is fixed."
)


@dataclass
class Claim:
    """The notices one attempt started on: ``token`` marks their rows; ``abandoned`` are
    the ones given up instead (their earlier attempts never finished)."""

    token: str
    notice_ids: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)


def start(conn: BaseDatabaseWrapper, *, limit: int, notice_id: int | None = None) -> Claim:
    """Start an attempt at up to ``limit`` due notices, oldest first (or at ``notice_id``
    only, if it is due). Call it outside a transaction: the count must commit now."""
    now = timezone.now()
    gap = CLAIM_GAP
    if topview_settings.verify_with_query:
        gap = timedelta(seconds=topview_settings.request_timeout) + VERIFY_MARGIN
    claim = Claim(token=uuid.uuid4().hex)
    only = "" if notice_id is None else " AND id = %(notice_id)s"
    rows = fetchall(
        conn,
        statement(START_ATTEMPTS, conn.alias, only),
        {
            "now": moment(conn, now),
            "reclaim_before": moment(conn, now - gap),
            "claim": claim.token,
            "max_attempts": topview_settings.max_attempts,
            "abandoned": ABANDONED,
            "limit": limit,
            "notice_id": notice_id,
        },
    )
    for pk, token in sorted(rows):
        (claim.notice_ids if token == claim.token else claim.abandoned).append(int(pk))
    return claim


def lock(conn: BaseDatabaseWrapper, claim: Claim) -> list[Notice]:
    """The claim's notices still unfinished, locked until the caller's transaction ends."""
    if not claim.notice_ids:
        return []
    # By id as well as by token: the primary key finds the rows, however many failed
    # notices the table keeps (the token alone has no index).
    ids = {f"id_{i}": pk for i, pk in enumerate(claim.notice_ids)}
    only = " AND id IN (" + ", ".join(f"%({name})s" for name in ids) + ")"
    rows = fetchall(conn, statement(LOCK_CLAIMED, conn.alias, only), {"claim": claim.token, **ids})
    return [instance(conn, Notice, row) for row in rows]


def held(conn: BaseDatabaseWrapper, claim: Claim) -> list[Notice]:
    """The claim's notices still unfinished, not locked (VERIFY_WITH_QUERY reads them
    before its calls, which no lock may span)."""
    return list(
        Notice.objects.using(conn.alias).filter(
            pk__in=claim.notice_ids,
            claim=claim.token,
            state__in=(NoticeState.PENDING, NoticeState.FAILED),
        )
    )


def release(
    conn: BaseDatabaseWrapper, notice: Notice, state: str, error: str, retry_in: float | None
) -> None:
    """Give the notice back unfinished: ``state`` and why, retried after ``retry_in``
    seconds (None: not retried)."""
    retry_at = None if retry_in is None else timezone.now() + timedelta(seconds=retry_in)
    execute(
        conn,
        statement(RELEASE, conn.alias),
        {
            "id": notice.pk,
            "claim": notice.claim,
            "state": state,
            "last_error": error,
            "next_attempt_at": moment(conn, retry_at),
        },
    )
    notice.state, notice.last_error, notice.next_attempt_at = state, error, retry_at
    notice.claim = ""
