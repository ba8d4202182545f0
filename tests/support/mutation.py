"""A pytest plugin for the mutation run on PostgreSQL (scripts/mutation.sh loads it with
``-p tests.support.mutation``; the suite itself never does).

mutmut runs the tests of each mutant in a process of its own, several at once, each with
``--reuse-db``. Two things keep one mutant from deciding another's verdict:

- every process takes a test database of its own, ``<TEST NAME>_<slot>``, the slot held
  by a file lock for the process's life, so no two processes share a database;
- the rows a killed process left (mutmut kills a mutant's process at its timeout, mid-test)
  are deleted before the session, as the tests expect an empty database;
- the inline path's PostgreSQL function is dropped from that database before the session,
  so ``migrate`` (``post_migrate``) installs it as *this* process's code builds it: a
  mutant that installs a broken function with the right version in its comment cannot
  leave it to the next mutant.

Between tests, the database is emptied with ``DELETE`` instead of Django's ``TRUNCATE`` and
``post_migrate`` (content types and permissions written again after each test): a tenth of
the time on PostgreSQL, where that flush was nine tenths of a test. Content types and
permissions, which no test of this selection writes, stay in place.

And the processing folder's ``functools.cache`` caches (statements, column lists, the
function's version) are emptied before every test. A mutant process is forked from the
one that ran the whole suite, caches filled: without this, a mutant of what fills them
would never run, and mutmut would not know which tests reach it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO, Any

import pytest
from django.conf import settings

SLOTS = 16
_held: list[IO[str]] = []


def _take_slot(base: str) -> int:
    """The first slot no other running process holds, locked until this one exits."""
    for slot in range(SLOTS):
        path = Path(tempfile.gettempdir()) / f"{base}-slot-{slot}.lock"
        handle = path.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held.append(handle)
        return slot
    raise pytest.UsageError(f"all {SLOTS} mutation test database slots are taken")


# What migrate writes, and no test: kept.
KEPT = ("django_migrations", "django_content_type", "auth_permission")


def _reset(database: dict[str, Any], name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(
            host=database.get("HOST") or None,
            port=database.get("PORT") or None,
            user=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            dbname=name,
            autocommit=True,
        ) as raw:
            raw.execute("DROP FUNCTION IF EXISTS topview_callbacks_receive")
            tables = [
                row[0]
                for row in raw.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
                if row[0] not in KEPT
            ]
            if tables:
                raw.execute("TRUNCATE " + ", ".join(f'"{table}"' for table in tables) + " CASCADE")
    except psycopg.OperationalError:
        pass  # no database yet: the session creates it, and migrate installs the function


def _quick_flush() -> None:
    from django.core.management.commands import flush

    def delete_rows(
        style: Any, connection: Any, reset_sequences: bool = True, allow_cascade: bool = False
    ) -> list[str]:
        # Django's foreign keys are deferred on PostgreSQL: any order is fine in the
        # flush's transaction.
        names = connection.introspection.django_table_names(only_existing=True)
        return [f'DELETE FROM "{name}";' for name in names if name not in KEPT]

    flush.sql_flush = delete_rows
    flush.emit_post_migrate_signal = lambda *args, **kwargs: None


def pytest_sessionstart(session: pytest.Session) -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        return
    _quick_flush()
    # A forked process inherits its parent's lock file: its slot is not this one's.
    while _held:
        _held.pop().close()
    base = database.setdefault("TEST", {}).get("NAME") or f"test_{database['NAME']}"
    base = os.environ.setdefault("TOPVIEW_MUTATION_PG_BASE", base)
    slot = _take_slot(base)
    for alias, other in settings.DATABASES.items():
        # The other test databases (tests/test_routing.py's "notices"), one per slot too.
        test = other.setdefault("TEST", {})
        if alias == "default" or not test.get("MIRROR"):
            suffix = "" if alias == "default" else f"_{alias}"
            test["NAME"] = f"{base}_{slot}{suffix}"
            _reset(other, test["NAME"])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    from tests.support.settings import forget_built_statements

    forget_built_statements()


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _held:
        _held.pop().close()
