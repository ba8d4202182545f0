"""The suite's own TOPVIEW_CALLBACKS (tests/settings.py), the one way a test changes it,
and where its database is."""

from __future__ import annotations

import os
from typing import Any

from django.test import override_settings

from tests import settings as test_settings

# What tests/settings.py configures, whatever a test has overridden since.
TOPVIEW_CALLBACKS: dict[str, Any] = dict(test_settings.TOPVIEW_CALLBACKS)
UID: str = TOPVIEW_CALLBACKS["UID"]  # the default account's, which notices must carry
UID_B: str = TOPVIEW_CALLBACKS["ACCOUNTS"]["brand-b"]["UID"]  # the second account's
ON_POSTGRES = test_settings.DATABASE_VENDOR == "postgres"
# Through PgBouncer (nox -s pgbouncer), and PostgreSQL's own port, to reach it directly.
BEHIND_PGBOUNCER = os.environ.get("TOPVIEW_TEST_PGBOUNCER") == "1"
POSTGRESQL_PORT = os.environ.get("TOPVIEW_TEST_PG_DIRECT_PORT") or os.environ.get("PGPORT", "5432")


def topview(**values: Any) -> override_settings:
    """``override_settings`` (a context manager or a decorator) of TOPVIEW_CALLBACKS:
    tests/settings.py's, updated by ``values``."""
    return override_settings(TOPVIEW_CALLBACKS={**TOPVIEW_CALLBACKS, **values})


def forget_built_statements() -> None:
    """Empty the caches of the statements and the inline function's call, which are built
    once from the settings: the next use builds them from the settings in force."""
    from topview_callbacks.processing import functions, sql

    for module in (sql, functions):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
