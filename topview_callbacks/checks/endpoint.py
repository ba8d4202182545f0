"""Checks of the endpoint's set-up: its URL, limits and database (E006, E008, E009, W003,
W004, W007, W009)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, is_number, notice_connection, settings_check
from topview_callbacks.conf import DEFAULT_ACCOUNT, DEFAULTS, SETTINGS_NAME, topview_settings
from topview_callbacks.logs import redact

SUPPORTED_VENDORS = ("postgresql", "sqlite")


@settings_check
def check_endpoint(raw: dict[str, Any]) -> list[CheckMessage]:
    return [*_check_limits(raw), *_check_database(), *_check_notice_urls(raw)]


def _check_limits(raw: dict[str, Any]) -> list[CheckMessage]:
    return [
        Error(f"{SETTINGS_NAME}[{key!r}] must be a positive number.", id=check_id("E006"))
        for key in ("MAX_BODY_SIZE", "REQUEST_TIMEOUT")
        if not is_number(value := raw.get(key, DEFAULTS[key])) or value <= 0
    ]


def _check_database() -> list[CheckMessage]:
    connection = notice_connection()
    if connection.vendor not in SUPPORTED_VENDORS:
        return [
            Error(
                f"topview_callbacks stores notices with INSERT ... ON CONFLICT ... RETURNING, "
                f"which the {connection.vendor!r} backend does not support.",
                hint="Route the topview_callbacks models to a PostgreSQL or SQLite database.",
                id=check_id("E008"),
            )
        ]
    db = connection.settings_dict
    if (
        connection.vendor == "postgresql"
        and not settings.DEBUG
        and not db.get("CONN_MAX_AGE")
        and not db.get("OPTIONS", {}).get("pool")
    ):
        return [
            Warning(
                "CONN_MAX_AGE is 0: every Topview notice opens a new database connection, "
                "which makes the endpoint about 7 times slower.",
                hint="Set CONN_MAX_AGE (e.g. 60) or OPTIONS['pool'] on the database.",
                id=check_id("W004"),
            )
        ]
    return []


def _where(account: str) -> str:
    if account == DEFAULT_ACCOUNT:
        return SETTINGS_NAME
    return f"{SETTINGS_NAME}['ACCOUNTS'][{account!r}]"


def _check_notice_urls(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    accounts = topview_settings.accounts.values()
    for account in accounts:
        tokens = account.notice_tokens  # its own only
        url = account.notice_url
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            messages.append(
                Error(
                    # Check output lands in CI and deploy logs: never the path token.
                    f"NOTICE_URL of account {account.name!r} is not an http(s) URL: "
                    f"{redact(url)!r}.",
                    id=check_id("E009"),
                )
            )
        others = (
            t for other in accounts if other.name != account.name for t in other.notice_tokens
        )
        inherits = account.uid and not tokens  # (with tokens of its own: W007)
        if inherits and any(f"/{token}/" in parts.path + "/" for token in others):
            messages.append(
                Warning(
                    f"NOTICE_URL of account {account.name!r} holds another account's path "
                    "token, which opens only that account: these notices would be refused "
                    "(and Topview would be given another account's secret).",
                    hint=f"Give {_where(account.name)} a NOTICE_URL and NOTICE_TOKENS of its own.",
                    id=check_id("W009"),
                )
            )
        if tokens and not any(f"/{token}/" in parts.path + "/" for token in tokens):
            messages.append(
                Warning(
                    f"NOTICE_TOKENS apply to account {account.name!r} but its NOTICE_URL holds "
                    "none of them, so Topview's notices would be refused.",
                    hint="Put one token at the end: https://example.com/topview/notice/<token>/",
                    id=check_id("W007"),
                )
            )
    if not raw.get("NOTICE_URL") and not any(account.notice_url for account in accounts):
        messages.append(
            Warning(
                "NOTICE_URL is not set: tasks are submitted without noticeUrl, so only "
                "polling learns their outcome.",
                hint="Set it to the public URL of topview_callbacks:notice.",
                id=check_id("W003"),
            )
        )
    return messages
