"""Checks of the accounts: UIDs and API keys (E002, E003, E013, W005, W006), the queue's
cap (E080)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import SETTINGS_NAME, topview_settings


@settings_check
def check_accounts(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    extra = raw.get("ACCOUNTS", {})
    if not isinstance(extra, dict):
        messages.append(
            Error(f"{SETTINGS_NAME}['ACCOUNTS'] must be a dict of dicts.", id=check_id("E003"))
        )
        extra = {}
    for name, values in extra.items():
        if not isinstance(values, dict) or not values.get("UID"):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['ACCOUNTS'][{name!r}] needs a 'UID'.",
                    hint='Use {"UID": "...", "API_KEY": "..."}.',
                    id=check_id("E013"),
                )
            )
    messages += _check_max_unfinished(raw, extra)
    accounts = topview_settings.accounts
    if not any(account.uid for account in accounts.values()):
        messages.append(
            Error(
                "No Topview UID is configured, so every notice would be refused.",
                hint=f"Set {SETTINGS_NAME}['UID'] to the UID under 'API Settings' in Topview.",
                id=check_id("E002"),
            )
        )
    uids = [account.uid for account in accounts.values() if account.uid]
    if len(uids) != len(set(uids)):
        messages.append(
            Warning(
                "Two Topview accounts share one UID; their notices cannot be told apart.",
                id=check_id("W005"),
            )
        )
    for account in accounts.values():
        if account.uid and not account.api_key:
            messages.append(
                Warning(
                    f"Topview account {account.name!r} has no API_KEY: notices are received, "
                    "but submitting, querying and polling cannot work.",
                    id=check_id("W006"),
                )
            )
    return messages


def _check_max_unfinished(raw: dict[str, Any], extra: dict[str, Any]) -> list[CheckMessage]:
    """MAX_UNFINISHED, flat and per account, must be a whole number of at least 1."""
    places = [(f"{SETTINGS_NAME}['MAX_UNFINISHED']", raw.get("MAX_UNFINISHED", 10))]
    places += [
        (f"{SETTINGS_NAME}['ACCOUNTS'][{name!r}]['MAX_UNFINISHED']", values["MAX_UNFINISHED"])
        for name, values in extra.items()
        if isinstance(values, dict) and "MAX_UNFINISHED" in values
    ]
    return [
        Error(
            f"{place} must be a whole number of at least 1, not {value!r}.",
            hint="It caps how many of the account's tasks the queue keeps unfinished at "
            "Topview at once; 10 is the default.",
            id=check_id("E080"),
        )
        for place, value in places
        if isinstance(value, bool) or not isinstance(value, int) or value < 1
    ]
