"""Run a delivery's store once more when its database connection was lost under it.

A connection kept from an earlier request (``CONN_MAX_AGE`` > 0, or one taken from a
pool) outlives a restart of PostgreSQL or of the pooler in front of it: its next use
fails although the database is back. Storing a delivery is safe to run again: a uuid
stored already writes nothing, and the store (with inline processing: the store, the
outcome and the receivers) is one transaction, which a lost connection rolls back whole.
So when the connection is found unusable after the failure, and no transaction of the
caller went with it, the store runs once more on a new connection. A connection that
cannot be opened at all is not tried twice: the database is down, and the caller answers
503 at once, as it does when the second try fails too.

If the connection broke while COMMIT was under way, the commit may have been applied
without this process learning it: the second try then finds the uuid stored and reports
a repeated delivery, so nothing runs twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from topview_callbacks.processing.sql import write_connection

logger = logging.getLogger(__name__)

T = TypeVar("T")


def once_more_if_connection_lost(store: Callable[[], T]) -> T:
    """``store()``; again, once, on a new connection if it failed because the notices'
    connection had been lost."""
    conn = write_connection()
    conn.ensure_connection()  # not retried: a database that cannot be reached is down
    began_on = conn.connection
    try:
        return store()
    except (OperationalError, InterfaceError):
        if not lost(conn, began_on):
            raise
        logger.warning(
            "The database connection %r was lost (the database or its pooler restarted?): "
            "storing the notice once more on a new connection",
            conn.alias,
            exc_info=True,
        )
        conn.close()
    return store()


def lost(conn: BaseDatabaseWrapper, began_on: Any) -> bool:
    """The connection the store began on is gone and nothing but the failed store went
    with it: Django dropped it (its rollback failed; it may have opened another already),
    or it no longer answers. Inside a transaction of the caller, whatever the caller wrote
    was lost with it: never retried."""
    if conn.in_atomic_block:
        return False
    return conn.connection is not began_on or not conn.is_usable()
