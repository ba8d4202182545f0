"""Running the outcome statements and reading their rows back as model instances."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql import Query

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import FINAL_TASK_STATUSES, Notice, SubmittedTask, TaskStatus

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


def connection() -> BaseDatabaseWrapper:
    return connections[router.db_for_write(Notice)]


def fetchone(conn: BaseDatabaseWrapper, sql: str, params: list[Any]) -> Any:
    """Run one statement that returns rows and return its first row (None without one)."""
    with _cursor(conn) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def execute(conn: BaseDatabaseWrapper, sql: str, params: list[Any]) -> None:
    """Run one statement that returns no rows."""
    with _cursor(conn) as cursor:
        cursor.execute(sql, params)


@contextlib.contextmanager
def _cursor(conn: BaseDatabaseWrapper) -> Iterator[Any]:
    """Django's cursor; with ``PREPARED_STATEMENTS``, one that prepares its statements.

    That is psycopg's server-side binding and ``prepare=True`` (Django's cursors bind on
    the client, which cannot prepare), still through Django's cursor wrapper, so that
    execute wrappers and query logging see it. PostgreSQL then parses and plans each
    statement once per connection. Transaction-pooling proxies (PgBouncer before 1.21)
    break with it.
    """
    if not topview_settings.prepared_statements:
        with conn.cursor() as cursor:
            yield cursor
        return
    conn.ensure_connection()
    raw = conn.connection
    if raw.prepare_threshold is None:  # Django's default: never prepare...
        raw.prepare_threshold = 2**31  # ...unless asked (prepare=True), as here
    factory = raw.cursor_factory
    raw.cursor_factory = _preparing_cursor_class()  # for this one cursor
    try:
        cursor = conn.cursor()
    finally:
        raw.cursor_factory = factory
    with cursor:
        yield cursor


@functools.cache
def _preparing_cursor_class() -> Any:
    import psycopg  # the PostgreSQL backend's driver: only this path needs it

    class PreparingCursor(psycopg.Cursor[Any]):
        """Server-side binding, and every statement prepared."""

        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            return super().execute(query, params, prepare=True)

    return PreparingCursor


def upsert_sql(conn: BaseDatabaseWrapper, source: str) -> tuple[str, list[Any]]:
    """The task upsert, fed by ``source`` (a SELECT of the task's columns), returning the
    task's row and whether it was inserted."""
    q = quote(conn)
    table = q(SubmittedTask._meta.db_table)
    columns = [q(str(f.column)) for f in task_fields()]
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


def old_status_of(old_status: Any, task_row: list[Any]) -> str | None:
    """The task's status before this statement recorded the outcome; None if it did not.

    ``task_row`` ends with ``created, recorded``."""
    *_, created, recorded = task_row
    if not recorded:
        return None
    if created:  # the task was first seen in this notice: it was running
        return str(TaskStatus.RUNNING)
    # Not visible to this statement only if created concurrently (by a submit).
    return str(old_status or TaskStatus.SUBMITTED)


def task_from(conn: BaseDatabaseWrapper, task_row: list[Any]) -> SubmittedTask | None:
    if not task_row or task_row[0] is None:
        return None
    return instance(conn, SubmittedTask, task_row[:-2])


def instance(conn: BaseDatabaseWrapper, model: type[M], row: list[Any]) -> M:
    """A model instance from a row of all its concrete columns, converted as the ORM does."""
    values = list(row)
    for position, (functions, column) in _converters(conn.alias, model).items():
        for convert in functions:  # as SQLCompiler.apply_converters does
            values[position] = convert(values[position], column, conn)
    return model.from_db(conn.alias, [f.attname for f in model._meta.concrete_fields], values)


@functools.cache
def _converters(alias: str, model: type[models.Model]) -> dict[int, Any]:
    """The ORM's converters for a row of ``model``'s columns, found once per database."""
    columns = [f.get_col(model._meta.db_table) for f in model._meta.concrete_fields]
    return dict(Query(model).get_compiler(using=alias).get_converters(columns))


def task_fields() -> list[Any]:
    return [f for f in SubmittedTask._meta.concrete_fields if not f.primary_key]


def quote(conn: BaseDatabaseWrapper) -> Any:
    return conn.ops.quote_name
