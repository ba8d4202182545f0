"""Checks of the polling fallback (E010-E012, W010, W011)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.biz_types import SPECS
from topview_callbacks.checks.base import check_id, is_number, settings_check
from topview_callbacks.conf import DEFAULTS, SETTINGS_NAME

# Off-peak Topview tasks may take a day.
MIN_SAFE_TASK_MAX_AGE = 24 * 60 * 60


@settings_check
def check_polling(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    poll_after = raw.get("POLL_AFTER", DEFAULTS["POLL_AFTER"])
    delays = poll_after if isinstance(poll_after, dict) else {"default": poll_after}
    if not all(is_number(value) and value >= 0 for value in delays.values()):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['POLL_AFTER'] must be seconds (a number >= 0), or a dict of "
                "bizType -> seconds with an optional 'default'.",
                hint='For example {"default": 900, "M2V_EXPORT": 3600}.',
                id=check_id("E010"),
            )
        )
    unknown = sorted(set(delays) - set(SPECS) - {"default"})
    if unknown:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['POLL_AFTER'] names unknown bizTypes: {', '.join(unknown)}.",
                hint="Use the bizType strings Topview sends, e.g. M2V_PREVIEW, or 'default'.",
                id=check_id("W011"),
            )
        )
    for key in ("POLL_MAX_INTERVAL", "TASK_MAX_AGE"):
        value = raw.get(key, DEFAULTS[key])
        if not is_number(value) or value <= 0:
            messages.append(
                Error(f"{SETTINGS_NAME}[{key!r}] must be a positive number.", id=check_id("E011"))
            )
    backoff = raw.get("POLL_BACKOFF", DEFAULTS["POLL_BACKOFF"])
    if not is_number(backoff) or backoff < 1:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['POLL_BACKOFF'] must be a number >= 1 (1: a fixed interval).",
                id=check_id("E012"),
            )
        )
    max_age = raw.get("TASK_MAX_AGE", DEFAULTS["TASK_MAX_AGE"])
    if is_number(max_age) and 0 < max_age < MIN_SAFE_TASK_MAX_AGE:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['TASK_MAX_AGE'] is under 24 hours: off-peak Topview tasks can "
                "take that long and would be marked expired before they finish.",
                hint="Leave the default (48 h) unless you never submit off-peak tasks.",
                id=check_id("W010"),
            )
        )
    return messages
