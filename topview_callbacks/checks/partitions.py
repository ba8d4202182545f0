"""Checks of partitioned notices (W100, E100).

W100 needs no database. E100 asks the database whether the notices table is partitioned,
so it runs only where Django runs database checks (``migrate``, ``check --database``).
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks import partitions
from topview_callbacks.checks.base import check_id, notice_connection, settings_check
from topview_callbacks.conf import SETTINGS_NAME, topview_settings


@settings_check
def check_partition_setting(raw: dict[str, Any]) -> list[CheckMessage]:
    connection = notice_connection()
    if not raw.get("PARTITION_NOTICES") or connection.vendor == "postgresql":
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['PARTITION_NOTICES'] is on, but the notices' database "
            f"{connection.alias!r} is not PostgreSQL: notices stay in one plain table.",
            hint="Partitioning is a PostgreSQL feature; leave the setting off elsewhere.",
            id=check_id("W100"),
        )
    ]


def check_partition_layout(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """E100: the setting and the notices table disagree (the statements would fail)."""
    connection = notice_connection()
    if not databases or connection.alias not in databases or connection.vendor != "postgresql":
        return []
    wanted = topview_settings.partition_notices
    try:
        # Before migration 0010 (which converts the table) there is nothing to compare.
        migrated = partitions.has_keys(connection)
        actual = partitions.is_partitioned(connection)
    except Exception:  # no server: nothing to compare
        return []
    if not migrated or wanted == actual:
        return []
    if wanted:
        message = "PARTITION_NOTICES is on, but the notices table is not partitioned."
        hint = "Run manage.py topview_partition_notices (docs/operations.md)."
    else:
        message = "The notices table is partitioned, but PARTITION_NOTICES is off."
        hint = "Set it back on: a partitioned table is not converted back."
    return [Error(message, hint=hint, id=check_id("E100"))]
