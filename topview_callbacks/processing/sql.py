"""Every hand-written statement of the pipeline, and how they run.

Each rule of recording an outcome is written once, here, as SQL that PostgreSQL and SQLite
(3.35+) both run: ``INSERT ... ON CONFLICT ... RETURNING``. On other databases the
statements run one by one from Python (``recording``); on PostgreSQL the inline path runs
the same texts inside one PL/pgSQL function (``functions``), so a delivery costs one round
trip whose inner statements are planned once per connection, with no prepared statement a
connection pooler would have to keep.

Parameters are named (``%(uuid)s``): Django's cursors on both databases take them, and
``functions`` turns them into the function's arguments.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import Query
from django.utils.dateparse import parse_datetime

from topview_callbacks.models import Notice, NoticeKey, SubmittedTask, partitioned_notices

M = TypeVar("M", bound=models.Model)


def write_connection() -> BaseDatabaseWrapper:
    """The connection notices are written through (the router's choice for ``Notice``)."""
    return connections[router.db_for_write(Notice)]


def is_postgresql(conn: BaseDatabaseWrapper) -> bool:
    return conn.vendor == "postgresql"


# Is a uuid stored already, and in which state? (A repeated delivery must not touch its
# task; one of a notice still pending starts it.)
FIND_NOTICE = "SELECT id, state FROM {notices} WHERE uuid = %(uuid)s"

# The same through the notice's key (PARTITION_NOTICES): no partition has an index on
# uuid; the key says which month the notice is in, so one partition is probed.
FIND_NOTICE_KEYED = """
SELECT n.id, n.state FROM {keys} k JOIN {notices} n ON n.received_at = k.received_at
WHERE k.uuid = %(uuid)s AND n.uuid = k.uuid
"""

# A task first seen in its notice (it was running), column by column: the parameter its
# value comes from, or a constant (its SQL, and its value in Python, a callable for a new
# one each time). RECORD_OUTCOME creates the task from it, and the inline path builds the
# same task in Python from it (``new_task``) rather than read the row back. The columns
# not named here have database defaults (the queue's, the owner's).
NEW_TASK: dict[str, str | tuple[str, Any]] = {
    "account": "account",
    "biz_type": "biz_type",
    "task_id": "task_id",
    "notice_uuid": "callback_uuid",
    "status": "status",
    "previous_status": ("'running'", "running"),
    "request_payload": ("'{}'", dict),
    "result": "result",
    "error_message": "error_message",
    "submitted_at": "received_at",
    "completed_at": "now",
    "last_polled_at": ("NULL", None),
    "next_poll_at": ("NULL", None),
    "poll_count": ("0", 0),
    "updated_at": "now",
    "cost_credit": "cost_credit",
}

# Record an outcome on its task: create it (NEW_TASK), or update it. Three rules live in
# the WHERE and the CASE: final statuses never change, a task is only ever completed by its
# own account's notices, and the task keeps the uuid of the first callback that completed
# it (polls have none). previous_status keeps the status the outcome replaced
# (task_status_changed sends it). A result that says what the task cost (costCredit)
# records it; one that does not keeps what is known. No row back: the outcome was not
# recorded (CLASSIFY says why). In the inline function (see ``functions``) {created} asks
# whether the row was created and {task_columns} is the id and an updated task's JSON
# document; elsewhere {created} is empty and {task_columns} the task's columns.
RECORD_OUTCOME = """
INSERT INTO {tasks} ({new_columns})
VALUES ({new_values})
ON CONFLICT (biz_type, task_id) DO UPDATE SET
    previous_status = {tasks}.status,
    status = excluded.status,
    result = excluded.result,
    error_message = excluded.error_message,
    completed_at = excluded.completed_at,
    next_poll_at = NULL,
    updated_at = excluded.updated_at,
    cost_credit = COALESCE(excluded.cost_credit, {tasks}.cost_credit),
    notice_uuid = CASE WHEN {tasks}.notice_uuid = '' THEN excluded.notice_uuid
        ELSE {tasks}.notice_uuid END
WHERE {tasks}.status NOT IN ('success', 'fail') AND {tasks}.account = excluded.account
RETURNING {created}{task_columns}
""".replace("{new_columns}", ", ".join(NEW_TASK)).replace(
    "{new_values}",
    ", ".join(
        f"%({source})s" if isinstance(source, str) else source[0] for source in NEW_TASK.values()
    ),
)

# Why RECORD_OUTCOME recorded nothing: the task is another account's (the notice is
# ignored) or already has its outcome (the notice is a duplicate).
CLASSIFY = "SELECT id, account FROM {tasks} WHERE biz_type = %(biz_type)s AND task_id = %(task_id)s"

# Store a notice; nothing happens for a uuid stored already (no row back).
STORE_NOTICE = """
INSERT INTO {notices} (uuid, account, biz_type, task_id, status, error_message, result,
    raw_body, headers, remote_addr, source, received_at, state, attempts, last_error,
    next_attempt_at, claimed_at, claim, processed_at, submitted_task_id)
VALUES (%(uuid)s, %(account)s, %(biz_type)s, %(task_id)s, %(status)s, %(error_message)s,
    %(result)s, %(raw_body)s, %(headers)s, %(remote_addr)s, %(source)s, %(received_at)s,
    %(state)s, %(attempts)s, %(last_error)s, %(next_attempt_at)s, NULL, '', %(processed_at)s,
    %(task_pk)s)
ON CONFLICT (uuid) DO NOTHING
RETURNING id
"""

# The same when notices are partitioned (PARTITION_NOTICES): PostgreSQL has no unique
# constraint on uuid alone across partitions, so the key table's primary key arbitrates,
# in the same statement: the notice is inserted only if its key was. A delivery racing
# another one of its uuid waits for it to commit, then gets no row back, as above.
STORE_NOTICE_KEYED = """
WITH new_key AS (
    INSERT INTO {keys} (uuid, received_at) VALUES (%(uuid)s, %(received_at)s)
    ON CONFLICT (uuid) DO NOTHING
    RETURNING uuid, received_at
)
INSERT INTO {notices} (uuid, account, biz_type, task_id, status, error_message, result,
    raw_body, headers, remote_addr, source, received_at, state, attempts, last_error,
    next_attempt_at, claimed_at, claim, processed_at, submitted_task_id)
SELECT new_key.uuid, %(account)s, %(biz_type)s, %(task_id)s, %(status)s, %(error_message)s,
    %(result)s, %(raw_body)s, %(headers)s, %(remote_addr)s, %(source)s, new_key.received_at,
    %(state)s, %(attempts)s, %(last_error)s, %(next_attempt_at)s, NULL, '', %(processed_at)s,
    %(task_pk)s
FROM new_key
RETURNING id
"""

# Start an attempt at up to %(limit)s notices that are due, oldest first: count it and
# mark the notices with this attempt's claim token, durably, before any receiver runs, so
# that a notice whose attempts keep killing their process is given up after MAX_ATTEMPTS
# (it turns failed here instead, without a claim). The processing transaction then locks
# the rows bearing the token; other workers skip locked rows ({skip_locked}), and rows
# claimed in the last moment (%(reclaim_before)s), which their claimer is about to lock. A
# notice keeps its next_attempt_at, so one whose attempt dies stays due.
START_ATTEMPTS = """
UPDATE {notices} SET
    attempts = attempts + 1,
    claimed_at = %(now)s,
    claim = CASE WHEN attempts < %(max_attempts)s THEN %(claim)s ELSE '' END,
    state = CASE WHEN attempts < %(max_attempts)s THEN state ELSE 'failed' END,
    last_error = CASE WHEN attempts < %(max_attempts)s THEN last_error ELSE %(abandoned)s END,
    next_attempt_at = CASE WHEN attempts < %(max_attempts)s THEN next_attempt_at ELSE NULL END
WHERE id IN (
    SELECT id FROM {notices}
    WHERE (state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
        OR state = 'failed' AND next_attempt_at <= %(now)s)
      AND (claim = '' OR claimed_at <= %(reclaim_before)s){only}
    ORDER BY received_at, id
    LIMIT %(limit)s{skip_locked}
){relaxed}
RETURNING id, claim
"""

# The notices of an attempt, locked for the processing transaction. It waits for a row
# another statement holds for a moment (an attempt starting skips it, but holds it while it
# looks), rather than skip it; every attempt locks its rows in this one order.
LOCK_CLAIMED = """
SELECT {notice_columns} FROM {notices}
WHERE claim = %(claim)s AND state IN ('pending', 'failed'){only}
ORDER BY received_at, id{for_update}
"""

# The end of an attempt at one notice: its state, the task its outcome is on, why it
# failed and when it is retried; the claim is released.
FINISH = """
UPDATE {notices} SET state = %(state)s, submitted_task_id = %(task_pk)s,
    last_error = %(last_error)s, next_attempt_at = %(next_attempt_at)s,
    processed_at = %(processed_at)s, claim = ''
WHERE id = %(id)s
"""

# Give a notice back without an attempt's outcome (VERIFY_WITH_QUERY could not confirm it).
RELEASE = """
UPDATE {notices} SET state = %(state)s, last_error = %(last_error)s,
    next_attempt_at = %(next_attempt_at)s, claim = ''
WHERE id = %(id)s AND claim = %(claim)s
"""

# Topview's answer to a query replaces what the callback claimed (VERIFY_WITH_QUERY).
VERIFIED = """
UPDATE {notices} SET status = %(status)s, result = %(result)s, error_message = %(error_message)s
WHERE id = %(id)s
"""


def keyed(conn: BaseDatabaseWrapper) -> bool:
    """Whether this database's notices are partitioned, their uuids kept in NoticeKey."""
    return partitioned_notices(conn)


def find_notice(conn: BaseDatabaseWrapper) -> str:
    """FIND_NOTICE, or its keyed twin when notices are partitioned."""
    return FIND_NOTICE_KEYED if keyed(conn) else FIND_NOTICE


def store_notice(conn: BaseDatabaseWrapper) -> str:
    """STORE_NOTICE, or its keyed twin when notices are partitioned."""
    return STORE_NOTICE_KEYED if keyed(conn) else STORE_NOTICE


def for_update(conn: BaseDatabaseWrapper, *, skip_locked: bool = False) -> str:
    """The row-locking clause this database has (SQLite has none: it runs one writing
    transaction at a time)."""
    if not conn.features.has_select_for_update_skip_locked:
        return ""
    return " FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE"


def relaxed_clause(conn: BaseDatabaseWrapper) -> str:
    """PostgreSQL: this one statement commits without waiting for the WAL flush. Its
    effect (an attempt counted) is seen by every session at once; only a crash of the
    database server itself could lose it, and then the attempt is simply not counted.
    It sits in the WHERE so that it costs no second round trip."""
    if not is_postgresql(conn):
        return ""
    return " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"


@functools.cache
def columns(model: type[models.Model]) -> str:
    """``model``'s columns in field order, as a SELECT or RETURNING list."""
    return ", ".join(str(field.column) for field in model._meta.concrete_fields)


@functools.cache
def statement(template: str, alias: str, only: str = "") -> str:
    """A statement above, ready for database ``alias``: its tables, model column lists and
    this database's clauses filled in (``{name}`` markers), built once. ``only`` narrows
    START_ATTEMPTS (a condition beginning with AND)."""
    conn = connections[alias]
    parts = {
        "notices": Notice._meta.db_table,
        "keys": NoticeKey._meta.db_table,
        "tasks": SubmittedTask._meta.db_table,
        "task_columns": columns(SubmittedTask),
        "notice_columns": columns(Notice),
        "for_update": for_update(conn),
        "skip_locked": for_update(conn, skip_locked=True),
        "relaxed": relaxed_clause(conn),
        "only": only,
        "created": "",
    }
    for name, value in parts.items():
        template = template.replace("{" + name + "}", value)
    return template.strip()


def fetchone(conn: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> Any:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def bound_fetchone(conn: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> Any:
    """``fetchone`` with the values sent apart from the statement (PostgreSQL's extended
    protocol), never prepared: psycopg need not quote them into the text, nor PostgreSQL
    parse them back out of it, and a transaction-pooling proxy has no prepared statement
    to lose. It runs on the connection's kept cursor (``_kept_cursor``); the connection's
    own cursors (client-side binding by default) are untouched."""
    conn.ensure_connection()
    kept = _kept_cursor(conn)
    if kept is None:  # psycopg2: client-side binding only
        return fetchone(conn, sql, params)
    wrap = conn.make_debug_cursor if conn.queries_logged else conn.make_cursor
    cursor = wrap(kept)  # not closed: the next call uses it again
    cursor.execute(sql, params)
    return cursor.fetchone()


_KEPT = "_topview_kept_cursor"


def _kept_cursor(conn: BaseDatabaseWrapper) -> Any:
    """The psycopg 3 cursor that ``bound_fetchone`` runs on, made once per database
    connection and kept with it (on Django's connection object, which belongs to one
    thread): a new psycopg cursor sets up its adapters for the call's 23 values and its
    result's columns again (about 50 µs of CPU per delivery when the result had 41 columns,
    docs/benchmark.md). A new
    connection (Django reconnected, or took another from its pool) gets a new cursor.
    None for another driver."""
    raw = conn.connection
    kept = getattr(conn, _KEPT, None)
    if kept is not None and kept[0] is raw:
        return kept[1]
    cursor = _unprepared_cursor(raw)
    setattr(conn, _KEPT, (raw, cursor))
    return cursor


def _unprepared_cursor(raw_connection: Any) -> Any:
    """A psycopg 3 cursor on ``raw_connection`` that binds on the server and never
    prepares; None for another driver."""
    try:
        import psycopg  # optional: the PostgreSQL driver a project installs
    except ImportError:
        return None
    if not isinstance(raw_connection, psycopg.Connection):
        return None
    return _unprepared_class(psycopg.Cursor)(raw_connection)


@functools.cache
def _unprepared_class(base: type) -> type:
    class Unprepared(base):  # type: ignore[misc]
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            return super().execute(query, params, **{**options, "prepare": False})

    return Unprepared


def fetchall(conn: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> list[Any]:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def execute(conn: BaseDatabaseWrapper, sql: str, params: dict[str, Any]) -> None:
    with conn.cursor() as cursor:
        cursor.execute(sql, params)


def execute_each(conn: BaseDatabaseWrapper, sql: str, params: list[dict[str, Any]]) -> None:
    """``sql`` once per set of ``params``: with psycopg 3, all of them in one round trip
    (``executemany`` pipelines them)."""
    if len(params) == 1:
        execute(conn, sql, params[0])
    elif params:
        with conn.cursor() as cursor:
            cursor.executemany(sql, params)


def fetch_each(conn: BaseDatabaseWrapper, sql: str, params: list[dict[str, Any]]) -> list[Any]:
    """``fetchone`` for each set of ``params``, in order: with psycopg 3 they are all sent
    in one round trip (a pipeline), and their rows read once the last has run."""
    if len(params) < 2 or not _pipelines(conn):
        return [fetchone(conn, sql, one) for one in params]
    cursors = [conn.cursor() for _one in params]
    try:
        with conn.wrap_database_errors, conn.connection.pipeline():
            for cursor, one in zip(cursors, params, strict=True):
                cursor.execute(sql, one)
        return [cursor.fetchone() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def _pipelines(conn: BaseDatabaseWrapper) -> bool:
    """Whether ``conn`` can send statements in a pipeline: psycopg 3, on a libpq with it."""
    if not hasattr(conn.connection, "pipeline"):  # sqlite3, psycopg2
        return False
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def moment(conn: BaseDatabaseWrapper, value: datetime | None) -> Any:
    """A datetime as this database's driver takes it."""
    return None if value is None else conn.ops.adapt_datetimefield_value(value)


def json_text(value: Any) -> str | None:
    """A JSON column's value, as ``JSONField`` writes it (None stays SQL NULL)."""
    return None if value is None else json.dumps(value)


def instance(
    conn: BaseDatabaseWrapper, model: type[M], row: Any, known: dict[str, Any] | None = None
) -> M:
    """A model instance from a row of all its columns (``columns(model)``), converted as
    the ORM converts them. ``known``: values the caller holds already, converted (by
    attname), used instead of converting the row's again (a JSON document parsed twice)."""
    values = list(row)
    names = _attnames(model)
    for position, (functions, column) in _converters(conn.alias, model).items():
        if known and names[position] in known:
            continue
        for convert in functions:  # as SQLCompiler.apply_converters does
            values[position] = convert(values[position], column, conn)
    if known:
        for position, name in enumerate(names):
            if name in known:
                values[position] = known[name]
    return model.from_db(conn.alias, names, values)


def document(model: type[models.Model], table: str, *, leave_out: str = "") -> str:
    """PostgreSQL: a row of ``model`` in ``table`` as one JSON document, for
    ``from_document``: decimals as text (a JSON number would pass through a float), the
    column ``leave_out`` left out (a value the caller holds already)."""
    decimals = [
        f"'{field.column}', {table}.{field.column}::text"
        for field in model._meta.concrete_fields
        if isinstance(field, models.DecimalField)
    ]
    text = f"to_jsonb({table})"
    if leave_out:
        text = f"({text} - '{leave_out}')"
    return f"{text} || jsonb_build_object({', '.join(decimals)})" if decimals else text


def from_document(
    conn: BaseDatabaseWrapper,
    model: type[M],
    found: dict[str, Any],
    known: dict[str, Any] | None = None,
) -> M:
    """A model instance from its row's JSON document (``document``), as parsed: each value
    as the ORM loads its column; ``known``: values the caller holds already (by attname)."""
    values = [
        (known[name] if known and name in known else _from_json(kind, found[column]))
        for name, column, kind in _document_fields(model)
    ]
    return model.from_db(conn.alias, _attnames(model), values)


def _from_json(kind: str, value: Any) -> Any:
    if value is None or kind == "as is":
        return value
    if kind == "decimal":
        return Decimal(value)
    # "datetime": PostgreSQL's ISO 8601 with its offset, the fraction's trailing zeros cut
    # (".12"), which Python 3.10's fromisoformat refuses; Django's parser takes both.
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a PostgreSQL timestamp: {value!r}")
    # Without USE_TZ Django loads naive datetimes in the connection's time zone, which is
    # the one PostgreSQL wrote the offset for.
    return parsed if settings.USE_TZ else parsed.replace(tzinfo=None)


@functools.cache
def _document_fields(model: type[models.Model]) -> list[tuple[str, str, str]]:
    """(attname, column, how its JSON value becomes the field's value) per field."""
    kinds = {"DateTimeField": "datetime", "DecimalField": "decimal"}
    found = []
    for field in model._meta.concrete_fields:
        kind = kinds.get(field.get_internal_type())
        if kind is None and field.get_internal_type() not in _AS_IS:
            raise TypeError(f"{field} has no reading from a JSON document")
        found.append((field.attname, str(field.column), kind or "as is"))
    return found


# Fields whose JSON value is already what the ORM loads (a key is its target's integer).
_AS_IS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "ForeignKey",
        "IntegerField",
        "JSONField",
        "PositiveIntegerField",
        "TextField",
    }
)


def written(conn: BaseDatabaseWrapper, model: type[M], values: dict[str, Any]) -> M:
    """An instance of ``model`` for a row this code just wrote with ``values`` (by
    attname; the other fields at their defaults), built as ``from_db`` builds one:
    positionally, without the keyword handling of ``Model.__init__``."""
    fields = model._meta.concrete_fields
    row = [values[f.attname] if f.attname in values else f.get_default() for f in fields]
    return model.from_db(conn.alias, _attnames(model), row)


def new_task(
    conn: BaseDatabaseWrapper, pk: int, params: dict[str, Any], result: Any
) -> SubmittedTask:
    """The task RECORD_OUTCOME just created (``pk``) with ``params``, built as NEW_TASK
    says instead of read back; ``result``: the notice's, parsed already (the parameter is
    its JSON text). PostgreSQL's parameters: its driver takes datetimes and decimals as
    they are."""
    values: dict[str, Any] = {}
    for column, source in NEW_TASK.items():
        if isinstance(source, str):
            values[column] = params[source]
        else:
            constant = source[1]
            values[column] = constant() if callable(constant) else constant
    values.update(id=pk, result=result)
    return written(conn, SubmittedTask, values)


@functools.cache
def _attnames(model: type[models.Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


@functools.cache
def _converters(alias: str, model: type[models.Model]) -> dict[int, Any]:
    """The ORM's converters for a row of ``model``'s columns, found once per database:
    they depend on the backend and the field types, never on one connection's state."""
    cols = [f.get_col(model._meta.db_table) for f in model._meta.concrete_fields]
    return dict(Query(model).get_compiler(using=alias).get_converters(cols))
