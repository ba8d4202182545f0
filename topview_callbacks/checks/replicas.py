"""Check of the database the admin, the dashboard and health read from (E070)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import SETTINGS_NAME


@settings_check
def check_read_database(raw: dict[str, Any]) -> list[CheckMessage]:
    alias = raw.get("READ_DATABASE")
    if alias is None or (isinstance(alias, str) and alias in settings.DATABASES):
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['READ_DATABASE'] is {alias!r}, which is not an alias of DATABASES.",
            hint="Name one of DATABASES (a replica of the primary), or leave it None to "
            "read where the database routers say.",
            id=check_id("E070"),
        )
    ]
