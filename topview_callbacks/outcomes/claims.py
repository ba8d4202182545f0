"""Claiming a stored notice and recording its outcome (a worker, a sweep, a replay,
the batch drain)."""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from topview_callbacks.models import Notice, NoticeSource, NoticeState, SubmittedTask
from topview_callbacks.outcomes.statements import (
    Claimed,
    connection,
    fetchone,
    instance,
    old_status_of,
    quote,
    task_fields,
    task_from,
    upsert_sql,
)


def claim_and_record(
    notice_id: int,
    condition: str,
    condition_params: list[Any],
) -> Claimed | None:
    """Claim notice ``notice_id`` if ``condition`` (``NoticeManager.claimable_sql``) holds,
    record its outcome and link it, in one statement. None when it was not claimable."""
    conn = connection()
    q = quote(conn)
    return _claim(conn, f"{q('id')} = %s AND ({condition})", [notice_id, *condition_params])


def claim_next_and_record(marking: Notice | None = None) -> Claimed | None:
    """``claim_and_record`` for the oldest pending notice no other worker holds.

    ``marking``: a claimed notice whose receivers ran (the drain's previous one); the same
    statement marks it processed at its ``processed_at``, so the two share one commit.
    It is marked even when no notice is left to claim.
    """
    conn = connection()
    q = quote(conn)
    selector = f"{q('state')} = %s ORDER BY {q('received_at')}, {q('id')} LIMIT 1"
    mark: tuple[str, list[Any]] = ("", [])
    if marking is not None:
        mark = (
            f"marked AS (UPDATE {q(Notice._meta.db_table)} SET {q('state')} = %s, "
            f"{q('processed_at')} = %s WHERE {q('id')} = %s), ",
            [NoticeState.PROCESSED, marking.processed_at, marking.pk],
        )
    return _claim(conn, selector, [NoticeState.PENDING], skip_locked=True, first=mark)


def _claim(
    conn: BaseDatabaseWrapper,
    selector: str,
    params: list[Any],
    *,
    skip_locked: bool = False,
    first: tuple[str, list[Any]] = ("", []),
) -> Claimed | None:
    """The claiming statement; ``first`` is a CTE (and its parameters) put before it."""
    q = quote(conn)
    now = timezone.now()
    notice_table, task_table = q(Notice._meta.db_table), q(SubmittedTask._meta.db_table)
    notice_columns = [q(str(f.column)) for f in Notice._meta.concrete_fields]
    task_columns = [q(str(f.column)) for f in SubmittedTask._meta.concrete_fields]
    from_notice: dict[str, str] = {
        "account": "n.{account}",
        "biz_type": "n.{biz_type}",
        "task_id": "n.{task_id}",
        "notice_uuid": "CASE WHEN n.{source} = %s THEN n.{uuid} ELSE '' END",
        "status": "n.{status}",
        "request_payload": "%s",
        "result": "n.{result}",
        "error_message": "n.{error_message}",
        "submitted_at": "n.{received_at}",
        "completed_at": "%s",
        "last_polled_at": "NULL",
        "next_poll_at": "NULL",
        "poll_count": "0",
        "updated_at": "%s",
    }
    names = {f.name: q(str(f.column)) for f in Notice._meta.concrete_fields}
    fields = task_fields()
    source = (
        f"SELECT {', '.join(from_notice[f.name].format(**names) for f in fields)} "
        f"FROM n WHERE n.{q('submitted_task_id')} IS NULL"
    )
    source_params = [
        NoticeSource.CALLBACK,
        SubmittedTask._meta.get_field("request_payload").get_db_prep_save({}, conn),
        now,
        now,
    ]
    upsert, upsert_params = upsert_sql(conn, source)
    task_id_column = q("submitted_task_id")
    sql = (
        f"WITH {first[0]}n AS (SELECT * FROM {notice_table} WHERE {selector} FOR UPDATE"
        f"{' SKIP LOCKED' if skip_locked else ''}), "
        f"old AS (SELECT t.{q('status')} FROM {task_table} t JOIN n "
        f"ON t.{q('biz_type')} = n.{q('biz_type')} AND t.{q('task_id')} = n.{q('task_id')}), "
        f"up AS ({upsert}), "
        f"claimed AS (UPDATE {notice_table} SET {q('state')} = %s, "
        f"{q('attempts')} = {notice_table}.{q('attempts')} + 1, "
        f"{q('processing_started_at')} = %s, {task_id_column} = "
        f"COALESCE({notice_table}.{task_id_column}, (SELECT id FROM up)) "
        f"FROM n WHERE {notice_table}.{q('id')} = n.{q('id')} "
        f"RETURNING {', '.join(f'{notice_table}.{c}' for c in notice_columns)}), "
        f"task AS (SELECT {', '.join(f'up.{c}' for c in task_columns)}, up.created, true "
        f"FROM up UNION ALL SELECT {', '.join(f't.{c}' for c in task_columns)}, false, false "
        f"FROM {task_table} t JOIN n ON t.{q('id')} = n.{task_id_column}) "
        f"SELECT claimed.*, (SELECT {q('status')} FROM old), task.* "
        f"FROM claimed LEFT JOIN task ON true"
    )
    params = [*first[1], *params, *source_params, *upsert_params, NoticeState.PROCESSING, now]
    row = fetchone(conn, sql, params)
    if row is None:
        return None
    width = len(notice_columns)
    notice = instance(conn, Notice, list(row[:width]))
    old_status, *task_row = row[width:]
    notice.submitted_task = task_from(conn, task_row)
    return Claimed(notice, old_status_of(old_status, task_row))
