"""W008: a development placeholder left in production settings.

The documented settings read each credential from the environment with a development
default that starts with ``insecure-`` (as ``startproject``'s ``SECRET_KEY`` starts with
``django-insecure-``), so that ``manage.py check``, tests and CI work without the
variables. ``check --deploy`` says when one of those defaults reached a deployment: a
placeholder UID refuses Topview's notices, a placeholder token is public.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import topview_settings

PLACEHOLDER = "insecure-"


@settings_check
def check_placeholders(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for account in topview_settings.accounts.values():
        keys = [
            key
            for key, values in (
                ("UID", [account.uid]),
                ("API_KEY", [account.api_key]),
                ("NOTICE_TOKENS", list(account.notice_tokens)),
                ("NOTICE_URL", [account.notice_url]),
            )
            if any(PLACEHOLDER in value for value in values)
        ]
        if keys:
            # The values themselves are not shown: a real token could contain the marker.
            messages.append(
                Warning(
                    f"Account {account.name!r} still has development placeholder values "
                    f"(starting with {PLACEHOLDER!r}) in {', '.join(keys)}.",
                    hint=(
                        "Set the real values in production: with the documented settings, "
                        "TOPVIEW_UID, TOPVIEW_API_KEY, TOPVIEW_NOTICE_TOKEN and "
                        "TOPVIEW_NOTICE_URL in the environment."
                    ),
                    id=check_id("W008"),
                )
            )
    return messages
