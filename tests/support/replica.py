"""The "replica" alias of tests/settings.py: waiting for it to replay what the primary wrote."""

from __future__ import annotations

import time

from django.db import OperationalError, connections


def caught_up(timeout: float = 60) -> None:
    """Wait until the replica has replayed what the primary wrote (at once on one server;
    a real replica may not even have the test database yet)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        target = cursor.fetchone()[0]
    replica = connections["replica"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with replica.cursor() as cursor:
                cursor.execute(
                    "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s", [target]
                )
                if cursor.fetchone()[0]:
                    return
        except OperationalError:  # the database is not there yet
            replica.close()
        time.sleep(0.1)
    raise AssertionError(f"the replica did not catch up in {timeout} s")
