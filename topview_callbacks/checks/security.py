"""Checks of who may deliver notices and what the admin may fetch, tagged ``security``
(E005, E030, E031, W001, W030)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import DEFAULT_ACCOUNT, SETTINGS_NAME, topview_settings

MIN_TOKEN_LENGTH = 16


def _where(account: str | None, key: str) -> str:
    if account is None:
        return f"{SETTINGS_NAME}[{key!r}]"
    return f"{SETTINGS_NAME}['ACCOUNTS'][{account!r}][{key!r}]"


def _account_settings(raw: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """The global settings (account None) and each account's own dict."""
    extra = raw.get("ACCOUNTS", {})
    found: list[tuple[str | None, dict[str, Any]]] = [(None, raw)]
    if isinstance(extra, dict):
        found += [(str(name), values) for name, values in extra.items() if isinstance(values, dict)]
    return found


def _valid_tokens(tokens: Any) -> bool:
    return isinstance(tokens, (list, tuple)) and all(
        isinstance(token, str) and len(token) >= MIN_TOKEN_LENGTH and "/" not in token
        for token in tokens
    )


def _valid_networks(entries: Any) -> bool:
    if not isinstance(entries, (list, tuple)):
        return False
    try:
        for entry in entries:
            ipaddress.ip_network(entry, strict=False)
    except (TypeError, ValueError):
        return False
    return True


@settings_check
def check_security(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for account, values in _account_settings(raw):
        if not _valid_tokens(values.get("NOTICE_TOKENS", [])):
            messages.append(
                Error(
                    f"{_where(account, 'NOTICE_TOKENS')} must be a list of strings of at least "
                    f"{MIN_TOKEN_LENGTH} characters, without '/'.",
                    hint="Make one: python -c 'import secrets; print(secrets.token_urlsafe(24))'",
                    id=check_id("E005"),
                )
            )
        keys = ("ALLOWED_IPS", "TRUSTED_PROXIES") if account is None else ("ALLOWED_IPS",)
        for key in keys:
            if not _valid_networks(values.get(key, [])):
                messages.append(
                    Error(
                        f"{_where(account, key)} must be a list of IP addresses or CIDR "
                        "networks; an entry that is not one matches no address.",
                        hint='For example ["203.0.113.0/24", "2001:db8::/32"].',
                        id=check_id("E030"),
                    )
                )
    hosts = raw.get("MEDIA_PREVIEW_HOSTS", [])
    if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) for h in hosts):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['MEDIA_PREVIEW_HOSTS'] must be a list of host names.",
                hint='For example ["amazonaws.com"] (subdomains included).',
                id=check_id("E031"),
            )
        )
    if not settings.DEBUG:
        messages += _check_deployment()
    return messages


def _check_deployment() -> list[CheckMessage]:
    messages: list[CheckMessage] = []
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
        if account.uid and not account.notice_tokens and not account.allowed_ips:
            where = "" if account.name == DEFAULT_ACCOUNT else f"['ACCOUNTS'][{account.name!r}]"
            messages.append(
                Warning(
                    f"Only the Topview-Uid protects the notices of account {account.name!r}: "
                    "it is not a secret (Topview signs nothing), so anyone who learns it can "
                    "post notices that your receivers act on.",
                    hint=f"Set {SETTINGS_NAME}{where}['NOTICE_TOKENS'] (a secret path token) "
                    "and/or 'ALLOWED_IPS'; see docs/security.md. VERIFY_WITH_QUERY stops "
                    "forged outcomes from firing but not the forged rows and queries.",
                    id=check_id("W030"),
                )
            )
    return messages
