"""Recording an outcome in one statement on PostgreSQL: the hot path's raw SQL.

``processing`` keeps the portable path (the ORM, a transaction, a row lock). On PostgreSQL,
data-modifying CTEs let one statement do what that path does in several round trips, with
the same guarantees, because a statement is atomic and its row locks are those of the ORM
path:

- ``store_claimed`` (inline processing, on arrival): INSERT the notice already claimed by
  this request, upsert its task with the outcome and link the two. A repeated ``uuid`` only
  counts a delivery and touches no task.
- ``claim_and_record`` (a worker, a sweep, a replay): claim a stored notice, record its
  outcome on its task and link them; ``claim_next_and_record`` does it for the oldest
  pending notice no one else holds (``FOR UPDATE SKIP LOCKED``: the batch drain).
- ``mark_processed``: the final UPDATE.

The task upsert is monotonic: ``ON CONFLICT (biz_type, task_id) DO UPDATE ... WHERE`` the
task is not final and belongs to the notice's account, so it returns no row when the outcome
was already delivered or the task is another account's. The caller then runs the portable
path, which tells the two apart (duplicate, ignored). Upsert and link are one statement, so
a crash never leaves a task recorded by a notice that is not linked to it (a re-run would
take the notice for a duplicate of its own outcome).
"""

from __future__ import annotations

from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.outcomes.arrival import StoredClaimed, store_claimed
from topview_callbacks.outcomes.claims import claim_and_record, claim_next_and_record
from topview_callbacks.outcomes.statements import Claimed, connection, execute, quote

__all__ = [
    "Claimed",
    "StoredClaimed",
    "claim_and_record",
    "claim_next_and_record",
    "connection",
    "mark_processed",
    "store_claimed",
    "supported",
]


def supported() -> bool:
    """Whether the one-statement path applies: PostgreSQL, no VERIFY_WITH_QUERY (a
    callback's outcome may only be recorded once Topview's query confirmed it), and no
    ARCHIVE_MEDIA (its rows are written in the outcome's own transaction, by processing)."""
    return (
        connection().vendor == "postgresql"
        and not topview_settings.verify_with_query
        and not topview_settings.archive_media
    )


def mark_processed(notice: Notice) -> None:
    """The final mark. ``ASYNC_PROCESSED_MARK`` commits it without waiting for the WAL
    flush (PostgreSQL ``synchronous_commit = off`` for this one statement)."""
    processed_at = timezone.now()
    conn = connection()
    if conn.vendor != "postgresql":
        Notice.objects.filter(pk=notice.pk).update(
            state=NoticeState.PROCESSED, processed_at=processed_at
        )
    else:
        q = quote(conn)
        relaxed = ""
        if topview_settings.async_processed_mark and not conn.in_atomic_block:
            relaxed = " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
        execute(
            conn,
            f"UPDATE {q(Notice._meta.db_table)} SET {q('state')} = %s, "
            f"{q('processed_at')} = %s WHERE {q('id')} = %s{relaxed}",
            [NoticeState.PROCESSED, processed_at, notice.pk],
        )
    notice.state, notice.processed_at = NoticeState.PROCESSED, processed_at
