"""Checks of who may deliver notices, tagged ``security`` (W001, E005)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import SETTINGS_NAME, topview_settings

MIN_TOKEN_LENGTH = 16


@settings_check
def check_security(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    tokens = raw.get("NOTICE_TOKENS", [])
    if not isinstance(tokens, (list, tuple)) or not all(
        isinstance(token, str) and len(token) >= MIN_TOKEN_LENGTH and "/" not in token
        for token in tokens
    ):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['NOTICE_TOKENS'] must be a list of strings of at least "
                f"{MIN_TOKEN_LENGTH} characters, without '/'.",
                hint="Make one: python -c 'import secrets; print(secrets.token_urlsafe(24))'",
                id=check_id("E005"),
            )
        )
    if not settings.DEBUG:
        for account in topview_settings.accounts.values():
            if urlsplit(account.notice_url).scheme == "http":
                messages.append(
                    Warning(
                        f"NOTICE_URL of account {account.name!r} is not https while DEBUG is "
                        "off: notices would cross the internet in clear text.",
                        hint="Serve the endpoint over TLS and give Topview its https:// URL.",
                        id=check_id("W001"),
                    )
                )
    return messages
