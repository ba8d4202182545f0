"""System checks as the check tests run them: a configuration that passes, and what
Django's check framework reports for this app under other settings."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, run_checks
from django.test import override_settings

TOKEN = "good-token-0123456789"
GOOD = {
    "UID": "uid-1",
    "API_KEY": "key-1",
    # A path token: without one (or ALLOWED_IPS), W030 says only the UID protects the endpoint.
    "NOTICE_TOKENS": [TOKEN],
    "NOTICE_URL": f"https://example.com/topview/notice/{TOKEN}/",
}
# GOOD with archiving on, processed by Celery: where the archiving checks start from.
ARCHIVING = {**GOOD, "PROCESSING": "celery", "ARCHIVE_MEDIA": True}


def ours(tags: list[str] | None = None) -> list[CheckMessage]:
    """What Django's check framework reports for this app (registered in ``ready()``)."""
    # databases=[]: Django 6.1's model checks would otherwise query each database.
    found = run_checks(tags=tags, databases=[])
    return [m for m in found if (m.id or "").startswith("topview_callbacks.")]


def ids(**settings: Any) -> list[str]:
    """The ids of ``ours()`` under ``override_settings(**settings)``."""
    with override_settings(**settings):
        return [message.id for message in ours()]  # type: ignore[misc]
