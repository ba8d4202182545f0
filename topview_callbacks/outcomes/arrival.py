"""``store_claimed``: the notice INSERT that, for a new uuid, also claims it and records
its outcome (inline processing, on arrival)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.utils import timezone

from topview_callbacks.models import (
    Delivery,
    Notice,
    NoticeState,
    SubmittedTask,
)
from topview_callbacks.models.columns import db_value
from topview_callbacks.outcomes.statements import (
    Claimed,
    connection,
    fetchone,
    old_status_of,
    quote,
    task_fields,
    task_from,
    upsert_sql,
)


@dataclass(frozen=True)
class StoredClaimed(Delivery):
    """A delivery stored by ``store_claimed``: ``claimed`` when it was new."""

    claimed: Claimed | None = None


def store_claimed(
    *, stale_before: datetime | None = None, max_attempts: int = 0, **values: Any
) -> StoredClaimed:
    """``Notice.objects.record_delivery`` that, for a new ``uuid``, also claims the notice
    and records its outcome on its task: one statement, durable when it returns."""
    conn = connection()
    now = timezone.now()
    values.setdefault("received_at", now)
    values.update(state=NoticeState.PROCESSING, attempts=1, processing_started_at=now)
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
    sql, upsert_params = _statement(conn.alias, stale_before is not None)
    params = [values["biz_type"], values["task_id"]]
    params += [db_value(f, task_values[f.name], conn) for f in task_fields()]
    params += [values["uuid"], *upsert_params]
    params += Notice.objects.delivery_params(
        conn, values, stale_before, max_attempts, LINKED_TO_TASK
    )
    row = fetchone(conn, sql, params)
    assert row is not None  # the notice's row, inserted or updated
    notice_id, count, state, old_status, *task_row = row
    if count != 1:
        return StoredClaimed(notice_id=notice_id, created=False, state=str(state))
    notice_fields = [f for f in Notice._meta.concrete_fields if not f.primary_key]
    notice = Notice.from_db(
        conn.alias,
        ["id", *(f.attname for f in notice_fields)],
        [
            notice_id,
            *(values[f.name] if f.name in values else f.get_default() for f in notice_fields),
        ],
    )
    notice.submitted_task = task_from(conn, task_row)
    claimed = Claimed(notice, old_status_of(old_status, task_row))
    return StoredClaimed(notice_id=notice_id, created=True, state=str(state), claimed=claimed)


# The notice's task column is the upserted task's id (the statement's "up" part).
LINKED_TO_TASK = {"submitted_task": "(SELECT id FROM up)"}


@functools.cache
def _statement(alias: str, reset: bool) -> tuple[str, list[Any]]:
    """The SQL of ``store_claimed`` and the upsert's constant parameters, built once per
    database: the same for every notice."""
    conn = connections[alias]
    q = quote(conn)
    notice_table, task_table = q(Notice._meta.db_table), q(SubmittedTask._meta.db_table)
    # Typed, so that a server-side prepared statement (PREPARED_STATEMENTS) knows them.
    typed = [f"CAST(%s AS {f.db_type(conn)})" for f in task_fields()]
    source = (
        f"SELECT {', '.join(typed)} WHERE NOT EXISTS "
        f"(SELECT 1 FROM {notice_table} WHERE {q('uuid')} = %s)"
    )
    upsert, upsert_params = upsert_sql(conn, source)
    insert = Notice.objects.delivery_statement(conn, reset, LINKED_TO_TASK)
    sql = (
        f"WITH old AS (SELECT {q('status')} FROM {task_table} "
        f"WHERE {q('biz_type')} = %s AND {q('task_id')} = %s), "
        f"up AS ({upsert}), ins AS ({insert}) "
        f"SELECT ins.*, (SELECT {q('status')} FROM old), up.*, up.id IS NOT NULL "
        "FROM ins LEFT JOIN up ON true"
    )
    return sql, upsert_params
