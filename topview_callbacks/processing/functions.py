"""PostgreSQL: the inline path's statements as one PL/pgSQL function.

``topview_callbacks_receive`` runs ``sql``'s FIND_NOTICE, RECORD_OUTCOME, CLASSIFY and
STORE_NOTICE, as ``recording.receive`` runs them one by one elsewhere: one round trip
for a delivery, and PL/pgSQL plans each inner statement once per connection and reuses
the plan. That is what prepared statements would give, without a prepared statement for
a transaction-pooling proxy (PgBouncer before 1.21) to lose: measured in
docs/benchmark.md. The function is built from the statements' text: migration 0005
installs it, and every later ``migrate`` replaces it when the code now builds another
(``ensure``, on ``post_migrate``). It carries a version that every call checks, so code and
database never disagree silently: a mismatch fails the call, the endpoint answers 503.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from topview_callbacks.models import NoticeState, SubmittedTask
from topview_callbacks.processing.sql import (
    CLASSIFY,
    RECORD_OUTCOME,
    bound_fetchone,
    document,
    find_notice,
    from_document,
    new_task,
    store_notice,
)

NAME = "topview_callbacks_receive"
# The SQLSTATE the function raises when its notice's uuid was stored by a concurrent writer.
STORED_CONCURRENTLY = "TV001"


class StoredConcurrently(DatabaseError):
    """The call rolled back: its uuid was stored meanwhile. Called again, it finds it;
    left unhandled, the endpoint answers 503 like any database error, and the sender
    retries."""


# The function's arguments, in order: the statements' parameters and their types.
ARGUMENTS = (
    ("uuid", "varchar"),
    ("account", "varchar"),
    ("biz_type", "varchar"),
    ("task_id", "varchar"),
    ("status", "varchar"),
    ("error_message", "text"),
    ("result", "jsonb"),
    ("raw_body", "text"),
    ("headers", "jsonb"),
    ("remote_addr", "inet"),
    ("source", "varchar"),
    ("received_at", "timestamptz"),
    ("state", "varchar"),
    ("attempts", "integer"),
    ("last_error", "text"),
    ("next_attempt_at", "timestamptz"),
    ("processed_at", "timestamptz"),
    ("callback_uuid", "varchar"),
    ("now", "timestamptz"),
    ("ignored_reason", "text"),
    ("cost_credit", "numeric"),
)
# STORE_NOTICE's parameters the function decides itself (a duplicate or ignored notice).
DECIDED = ("state", "last_error", "next_attempt_at", "processed_at", "task_pk")
_PARAMETER = re.compile(r"%\((\w+)\)s")
# RECORD_OUTCOME here returns three values: whether it created the task (an INSERT
# leaves the new row's xmax 0; ON CONFLICT's update locks the row, which sets it), its id,
# and an updated task's row as one JSON document (``sql.from_document``). A created task's
# document is NULL: the caller builds the task from its arguments (``sql.new_task``).
# One document rather than a value per field: each column of a function's result costs
# PostgreSQL about 8,500 instructions a call (measured in docs/benchmark.md), and a task
# has 35 of them.
TASKS = "topview_callbacks_submittedtask"
CREATED = f"{TASKS}.xmax = 0"

# What the call answers, in this order: one JSON array as text (``RESULT``). A scalar, not
# a table of these columns: a function in a query's FROM costs PostgreSQL about 110,000
# more instructions a call (its result's row type is worked out from the function's
# declaration while the call is analysed, planned and started, and its row goes through a
# tuplestore), measured in docs/benchmark.md.
OUTPUTS = (
    ("o_notice_id", "bigint"),
    ("o_repeated", "boolean"),
    ("o_state", "varchar"),
    ("o_last_error", "text"),
    ("o_task_pk", "bigint"),
    ("o_created", "boolean"),
    ("o_task", "jsonb"),
)
RESULT = f"json_build_array({', '.join(name for name, _kind in OUTPUTS)})::text"


def _declared(variables: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"    {name} {kind};" for name, kind in variables)


def _plpgsql(template: str) -> str:
    """A statement of ``sql`` inside the function: parameters become its arguments
    (``p_name``) or, for what it decides, its variables (``v_name``)."""
    text = (
        template.replace("{notices}", "topview_callbacks_notice")
        .replace("{tasks}", TASKS)
        .replace("{keys}", "topview_callbacks_noticekey")
    )
    updated_task = document(SubmittedTask, TASKS, leave_out="result")
    text = text.replace("{created}", f"{CREATED}, ").replace(
        "{task_columns}", f"id, CASE WHEN {CREATED} THEN NULL ELSE {updated_task} END"
    )
    return _PARAMETER.sub(lambda m: f"v_{m[1]}" if m[1] in DECIDED else f"p_{m[1]}", text.strip())


def body(conn: BaseDatabaseWrapper) -> str:
    """The function's body, the version check aside."""
    return f"""
DECLARE
{_declared(OUTPUTS)}
    v_state varchar := p_state;
    v_last_error text := p_last_error;
    v_next_attempt_at timestamptz := p_next_attempt_at;
    v_processed_at timestamptz := p_processed_at;
    v_task_pk bigint;
    v_account varchar;
BEGIN
    -- Deliveries of one uuid take turns, so the second sees the first's notice.
    PERFORM pg_advisory_xact_lock(hashtextextended(p_uuid, 0));
    {_plpgsql(find_notice(conn))}
    INTO o_notice_id, o_state;
    IF FOUND THEN
        o_repeated := true;  -- a repeated uuid: nothing written
        RETURN {RESULT};
    END IF;
    o_repeated := false;
    {_plpgsql(RECORD_OUTCOME)}
    INTO o_created, v_task_pk, o_task;
    IF NOT FOUND THEN
        {_plpgsql(CLASSIFY)}
        INTO v_task_pk, v_account;
        IF v_account = p_account THEN
            v_state := '{NoticeState.DUPLICATE}';
            v_last_error := '';
        ELSE
            v_state := '{NoticeState.IGNORED}';
            v_last_error := replace(p_ignored_reason, '{{owner}}', v_account);
            v_task_pk := NULL;
        END IF;
        v_next_attempt_at := NULL;
        v_processed_at := p_now;
    END IF;
    {_plpgsql(store_notice(conn))}
    INTO o_notice_id;
    IF o_notice_id IS NULL THEN
        -- Stored meanwhile by a writer that takes no advisory lock (a poll's answer, a
        -- manual store): this call's writes roll back, and the caller tries once more.
        RAISE EXCEPTION 'topview_callbacks: notice % stored concurrently', p_uuid
            USING ERRCODE = '{STORED_CONCURRENTLY}';
    END IF;
    o_state := v_state;
    o_last_error := v_last_error;
    o_task_pk := v_task_pk;
    RETURN {RESULT};
END
"""


def version(conn: BaseDatabaseWrapper) -> str:
    """A digest of the function's text: what the code calls and the database must have."""
    return hashlib.sha256(definition(conn, "0").encode()).hexdigest()[:16]


def definition(conn: BaseDatabaseWrapper, expected: str) -> str:
    arguments = ", ".join(f"p_{name} {kind}" for name, kind in ARGUMENTS)
    check = (
        f"    IF p_version <> '{expected}' THEN\n"
        "        RAISE EXCEPTION 'topview_callbacks: the database function % is not the one "
        "this code calls; run manage.py migrate', 'topview_callbacks_receive';\n"
        "    END IF;\n"
    )
    text = body(conn).replace("BEGIN\n", "BEGIN\n" + check, 1)
    return (
        f"CREATE FUNCTION {NAME}(p_version varchar, {arguments})\n"
        f"RETURNS text\nLANGUAGE plpgsql AS $function$\n{text}$function$"
    )


def install(conn: BaseDatabaseWrapper) -> None:
    """Create the function as this code builds it, its version in its comment."""
    current = version(conn)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION IF EXISTS {NAME}")
        cursor.execute(definition(conn, current))
        cursor.execute(f"COMMENT ON FUNCTION {NAME} IS '{current}'")


def installed_version(conn: BaseDatabaseWrapper) -> str | None:
    """The version of the function the database has (None: it has none)."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT obj_description(oid, 'pg_proc') FROM pg_proc "
            "WHERE proname = %s AND pg_function_is_visible(oid)",
            [NAME],
        )
        row = cursor.fetchone()
    return None if row is None else str(row[0] or "")


def ensure(conn: BaseDatabaseWrapper) -> bool:
    """Install the function unless the database has this code's version; True if it did."""
    if installed_version(conn) == version(conn):
        return False
    install(conn)
    return True


def uninstall(conn: BaseDatabaseWrapper) -> None:
    with conn.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION IF EXISTS {NAME}")


def receive(
    conn: BaseDatabaseWrapper, params: dict[str, Any], result: Any
) -> tuple[int, bool, str, int | None, SubmittedTask | None, str]:
    """Call the function: the notice's id, whether its uuid was stored already (then
    nothing was written), its state and last error, its task's pk, and the task when this
    call recorded the outcome on it (its ``result``, the notice's, as parsed already)."""
    try:
        row = bound_fetchone(conn, _call(conn.alias), {**params, "version": _version(conn.alias)})
    except DatabaseError as exc:
        if sqlstate(exc) == STORED_CONCURRENTLY:
            raise StoredConcurrently(params["uuid"]) from exc
        raise
    notice_id, repeated, state, last_error, task_pk, created, task_document = json.loads(row[0])
    task = None
    if created:
        task = new_task(conn, task_pk, params, result)
    elif task_document is not None:
        task = from_document(conn, SubmittedTask, task_document, {"result": result})
    return int(notice_id), bool(repeated), str(state), task_pk, task, str(last_error or "")


def sqlstate(error: DatabaseError) -> str | None:
    """The SQLSTATE of the driver's error behind Django's: psycopg 3 calls it ``sqlstate``,
    psycopg2 ``pgcode``."""
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


@functools.cache
def _call(alias: str) -> str:
    placeholders = ", ".join(f"%({name})s" for name, _kind in ARGUMENTS)
    return f"SELECT {NAME}(%(version)s, {placeholders})"


@functools.cache
def _version(alias: str) -> str:
    return version(connections[alias])
