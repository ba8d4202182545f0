"""Checks of the notices' database connections against restarts, poolers and ASGI
(W070-W072, W110).

A check cannot ask PgBouncer whether it is there: a client sees a PostgreSQL server either
way. W071 and W072 go by the address (PgBouncer's port 6432, or a host named after it);
a pooler elsewhere is not seen, and one in session mode may silence them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning

from topview_callbacks.checks.base import check_id, notice_connection, settings_check

#: PgBouncer's default port.
PGBOUNCER_PORT = 6432


@settings_check
def check_pooling(raw: dict[str, Any]) -> list[CheckMessage]:
    connection = notice_connection()
    if connection.vendor != "postgresql" or settings.DEBUG:
        return []
    db = connection.settings_dict
    options = db.get("OPTIONS") or {}
    messages: list[CheckMessage] = []
    if db.get("CONN_MAX_AGE") != 0 and not options.get("pool") and not db.get("CONN_HEALTH_CHECKS"):
        messages.append(
            Warning(
                f"Database {connection.alias!r} keeps connections (CONN_MAX_AGE) without "
                "CONN_HEALTH_CHECKS: after PostgreSQL or its pooler restarts, each kept "
                "connection fails once more. The callback endpoint stores the notice again "
                "on a new connection, but the admin, the commands and the workers fail.",
                hint=f"Set 'CONN_HEALTH_CHECKS': True in DATABASES[{connection.alias!r}].",
                id=check_id("W070"),
            )
        )
    asgi = getattr(settings, "ASGI_APPLICATION", None)
    if asgi and db.get("CONN_MAX_AGE") != 0 and not options.get("pool"):
        messages.append(_kept_under_asgi(connection.alias))
    if not behind_pgbouncer(db):
        return messages
    if not db.get("DISABLE_SERVER_SIDE_CURSORS"):
        messages.append(
            Warning(
                f"Database {connection.alias!r} looks like PgBouncer ({_address(db)}) and "
                "allows server-side cursors: under transaction pooling, a cursor that "
                "QuerySet.iterator() opens outside a transaction is gone when the next "
                "fetch lands on another server connection.",
                hint=f"Set 'DISABLE_SERVER_SIDE_CURSORS': True in DATABASES"
                f"[{connection.alias!r}], or silence this check if PgBouncer pools sessions.",
                id=check_id("W071"),
            )
        )
    # Django passes prepare_threshold=None (never prepare) unless OPTIONS sets a number;
    # psycopg's client-side binding cursors (Django's default) never prepare.
    if options.get("server_side_binding") and options.get("prepare_threshold") is not None:
        messages.append(
            Warning(
                f"Database {connection.alias!r} looks like PgBouncer ({_address(db)}) and "
                "psycopg prepares statements (server_side_binding and a prepare_threshold): under "
                "transaction pooling, PgBouncer before 1.21, or without "
                "max_prepared_statements, loses them between transactions and queries fail "
                "with 'prepared statement ... does not exist'.",
                hint="Set OPTIONS 'prepare_threshold': None, or run PgBouncer 1.21 or later "
                "with max_prepared_statements above 0 and silence this check.",
                id=check_id("W072"),
            )
        )
    return messages


def _kept_under_asgi(alias: str) -> Warning:
    # Measured (tests/test_asgi.py, bench/servers.py): ten requests left ten connections.
    return Warning(
        f"ASGI_APPLICATION is set and database {alias!r} keeps connections (CONN_MAX_AGE) "
        "without a pool: under ASGI Django runs each request's synchronous code in a thread "
        "of its own, so every request opens a connection that is left open after it, until "
        "PostgreSQL refuses more clients.",
        hint=f"Under ASGI, set OPTIONS['pool'] (Django 5.1+, psycopg 3) and CONN_MAX_AGE 0 in "
        f"DATABASES[{alias!r}]; silence this check if the site is served by WSGI only.",
        id=check_id("W110"),
    )


def behind_pgbouncer(db: dict[str, Any]) -> bool:
    """Whether the database's address says PgBouncer: its port, or its host's name."""
    port = str(db.get("PORT") or "")
    return port == str(PGBOUNCER_PORT) or "pgbouncer" in str(db.get("HOST") or "").lower()


def _address(db: dict[str, Any]) -> str:
    return f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}"
