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

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import Query
from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    FINAL_TASK_STATUSES,
    Delivery,
    Notice,
    NoticeSource,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Claimed:
    """A notice this process holds (``processing``), as the statement left it.

    ``notice.submitted_task`` is set when its outcome is recorded on that task (by this
    statement: ``old_status`` is then the task's status before it, or earlier: None) and
    None when the statement recorded nothing (see the module docstring).
    """

    notice: Notice
    old_status: str | None = None


@dataclass(frozen=True)
class StoredClaimed(Delivery):
    """A delivery stored by ``store_claimed``: ``claimed`` when it was new."""

    claimed: Claimed | None = None


def connection() -> BaseDatabaseWrapper:
    return connections[router.db_for_write(Notice)]


def supported() -> bool:
    """Whether the one-statement path applies: PostgreSQL, no VERIFY_WITH_QUERY (a
    callback's outcome may only be recorded once Topview's query confirmed it), and no
    ARCHIVE_MEDIA (its rows are written in the outcome's own transaction, by processing)."""
    return (
        connection().vendor == "postgresql"
        and not topview_settings.verify_with_query
        and not topview_settings.archive_media
    )


def store_claimed(
    *, stale_before: datetime | None = None, max_attempts: int = 0, **values: Any
) -> StoredClaimed:
    """``Notice.objects.record_delivery`` that, for a new ``uuid``, also claims the notice
    and records its outcome on its task: one statement, durable when it returns."""
    conn = connection()
    now = timezone.now()
    values.setdefault("received_at", now)
    values.update(state=NoticeState.PROCESSING, attempts=1, processing_started_at=now)
    q = _quote(conn)
    notice_table, task_table = q(Notice._meta.db_table), q(SubmittedTask._meta.db_table)
    task_values: dict[str, Any] = {
        "account": values.get("account", "default"),
        "biz_type": values["biz_type"],
        "task_id": values["task_id"],
        "notice_uuid": values["uuid"],
        "status": values["status"],
        "request_payload": {},
        "result": values.get("result"),
        "error_message": values.get("error_message", ""),
        "submitted_at": values["received_at"],
        "completed_at": now,
        "last_polled_at": None,
        "next_poll_at": None,
        "poll_count": 0,
        "updated_at": now,
    }
    fields = _task_fields()
    # Typed, so that a server-side prepared statement (PREPARED_STATEMENTS) knows them.
    typed = [f"CAST(%s AS {f.db_type(conn)})" for f in fields]
    source = (
        f"SELECT {', '.join(typed)} WHERE NOT EXISTS "
        f"(SELECT 1 FROM {notice_table} WHERE {q('uuid')} = %s)"
    )
    source_params = [f.get_db_prep_save(task_values[f.name], conn) for f in fields]
    upsert, upsert_params = _upsert_sql(conn, source)
    insert, insert_params = Notice.objects.delivery_sql(
        conn, values, stale_before, max_attempts, {"submitted_task": "(SELECT id FROM up)"}
    )
    sql = (
        f"WITH old AS (SELECT {q('status')} FROM {task_table} "
        f"WHERE {q('biz_type')} = %s AND {q('task_id')} = %s), "
        f"up AS ({upsert}), ins AS ({insert}) "
        f"SELECT ins.*, (SELECT {q('status')} FROM old), up.*, up.id IS NOT NULL "
        "FROM ins LEFT JOIN up ON true"
    )
    params = [values["biz_type"], values["task_id"], *source_params, values["uuid"]]
    params += [*upsert_params, *insert_params]
    row = _fetchone(conn, sql, params)
    assert row is not None  # the notice's row, inserted or updated
    notice_id, count, state, old_status, *task_row = row
    if count != 1:
        return StoredClaimed(notice_id=notice_id, created=False, state=str(state))
    fields = [f for f in Notice._meta.concrete_fields if not f.primary_key]
    notice = Notice.from_db(
        conn.alias,
        ["id", *(f.attname for f in fields)],
        [notice_id, *(values[f.name] if f.name in values else f.get_default() for f in fields)],
    )
    notice.submitted_task = _task_from(conn, task_row)
    claimed = Claimed(notice, _old_status(old_status, task_row))
    return StoredClaimed(notice_id=notice_id, created=True, state=str(state), claimed=claimed)


def claim_and_record(
    notice_id: int,
    condition: str,
    condition_params: list[Any],
) -> Claimed | None:
    """Claim notice ``notice_id`` if ``condition`` (``NoticeManager.claimable_sql``) holds,
    record its outcome and link it, in one statement. None when it was not claimable."""
    conn = connection()
    q = _quote(conn)
    return _claim(conn, f"{q('id')} = %s AND ({condition})", [notice_id, *condition_params])


def claim_next_and_record() -> Claimed | None:
    """``claim_and_record`` for the oldest pending notice no other worker holds."""
    conn = connection()
    q = _quote(conn)
    selector = f"{q('state')} = %s ORDER BY {q('received_at')}, {q('id')} LIMIT 1"
    return _claim(conn, selector, [NoticeState.PENDING], skip_locked=True)


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
        q = _quote(conn)
        relaxed = ""
        if topview_settings.async_processed_mark and not conn.in_atomic_block:
            relaxed = " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
        _fetchone(
            conn,
            f"UPDATE {q(Notice._meta.db_table)} SET {q('state')} = %s, "
            f"{q('processed_at')} = %s WHERE {q('id')} = %s{relaxed}",
            [NoticeState.PROCESSED, processed_at, notice.pk],
        )
    notice.state, notice.processed_at = NoticeState.PROCESSED, processed_at


def _claim(
    conn: BaseDatabaseWrapper, selector: str, params: list[Any], *, skip_locked: bool = False
) -> Claimed | None:
    q = _quote(conn)
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
    fields = _task_fields()
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
    upsert, upsert_params = _upsert_sql(conn, source)
    task_id_column = q("submitted_task_id")
    sql = (
        f"WITH n AS (SELECT * FROM {notice_table} WHERE {selector} FOR UPDATE"
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
    params = [*params, *source_params, *upsert_params, NoticeState.PROCESSING, now]
    row = _fetchone(conn, sql, params)
    if row is None:
        return None
    width = len(notice_columns)
    notice = _instance(conn, Notice, list(row[:width]))
    old_status, *task_row = row[width:]
    notice.submitted_task = _task_from(conn, task_row)
    return Claimed(notice, _old_status(old_status, task_row))


def _fetchone(conn: BaseDatabaseWrapper, sql: str, params: list[Any]) -> Any:
    """Run one statement and return its first row (None without one).

    With ``PREPARED_STATEMENTS``, as a server-side prepared statement: psycopg's
    server-side binding and ``prepare=True`` (Django's cursors bind on the client, which
    cannot prepare), still through Django's cursor wrapper, so that execute wrappers and
    query logging see it. PostgreSQL then parses and plans each statement once per
    connection. Transaction-pooling proxies (PgBouncer before 1.21) break with it.
    """
    with conn.cursor() as cursor:
        if topview_settings.prepared_statements:
            cursor.cursor.close()
            raw = conn.connection
            if raw.prepare_threshold is None:  # Django's default: never prepare...
                raw.prepare_threshold = 2**31  # ...unless asked (prepare=True), as here
            cursor.cursor = _preparing_cursor_class()(raw)
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


@functools.cache
def _preparing_cursor_class() -> Any:
    import psycopg  # the PostgreSQL backend's driver: only this path needs it

    class PreparingCursor(psycopg.Cursor[Any]):
        """Server-side binding, and every statement prepared."""

        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            return super().execute(query, params, prepare=True)

    return PreparingCursor


def _upsert_sql(conn: BaseDatabaseWrapper, source: str) -> tuple[str, list[Any]]:
    """The task upsert, fed by ``source`` (a SELECT of the task's columns), returning the
    task's row and whether it was inserted."""
    q = _quote(conn)
    table = q(SubmittedTask._meta.db_table)
    columns = [q(str(f.column)) for f in _task_fields()]
    replaced = ["status", "result", "error_message", "completed_at", "updated_at"]
    returned = [q(str(f.column)) for f in SubmittedTask._meta.concrete_fields]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) {source} "
        f"ON CONFLICT ({q('biz_type')}, {q('task_id')}) DO UPDATE SET "
        + ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in replaced)
        + f", {q('next_poll_at')} = NULL, {q('notice_uuid')} = CASE WHEN "
        f"{table}.{q('notice_uuid')} = '' THEN EXCLUDED.{q('notice_uuid')} "
        f"ELSE {table}.{q('notice_uuid')} END "
        f"WHERE {table}.{q('status')} NOT IN (%s, %s) "
        f"AND {table}.{q('account')} = EXCLUDED.{q('account')} "
        f"RETURNING {', '.join(f'{table}.{c}' for c in returned)}, "
        f"{table}.xmax = 0 AS created"
    )
    return sql, sorted(FINAL_TASK_STATUSES)


def _old_status(old_status: Any, task_row: list[Any]) -> str | None:
    """The task's status before this statement recorded the outcome; None if it did not.

    ``task_row`` ends with ``created, recorded``."""
    *_, created, recorded = task_row
    if not recorded:
        return None
    if created:  # the task was first seen in this notice: it was running
        return str(TaskStatus.RUNNING)
    # Not visible to this statement only if created concurrently (by a submit).
    return str(old_status or TaskStatus.SUBMITTED)


def _task_from(conn: BaseDatabaseWrapper, task_row: list[Any]) -> SubmittedTask | None:
    if not task_row or task_row[0] is None:
        return None
    return _instance(conn, SubmittedTask, task_row[:-2])


def _instance(conn: BaseDatabaseWrapper, model: type[M], row: list[Any]) -> M:
    """A model instance from a row of all its concrete columns, converted as the ORM does."""
    fields = model._meta.concrete_fields
    compiler = Query(model).get_compiler(connection=conn)
    converters = compiler.get_converters([f.get_col(model._meta.db_table) for f in fields])
    [values] = list(compiler.apply_converters([row], converters)) if converters else [row]
    return model.from_db(conn.alias, [f.attname for f in fields], values)


def _task_fields() -> list[Any]:
    return [f for f in SubmittedTask._meta.concrete_fields if not f.primary_key]


def _quote(conn: BaseDatabaseWrapper) -> Any:
    return conn.ops.quote_name
