"""Checks of processing, retries, the sweep and pruning (E004, E007, E020, W020, W022)."""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, is_number, notice_connection, settings_check
from topview_callbacks.conf import DEFAULTS, PROCESSING_MODES, SETTINGS_NAME

_POSITIVE_KEYS = (
    "MAX_ATTEMPTS",
    "RETRY_BACKOFF_MAX",
    "SWEEP_AFTER",
    "PRUNE_AFTER_DAYS",
    "PRUNE_FAILED_AFTER_DAYS",
)


@settings_check
def check_processing(raw: dict[str, Any]) -> list[CheckMessage]:
    messages = _check_mode(raw) + _check_numbers(raw)
    if any(message.id == check_id("E020") for message in messages):
        return messages  # the comparisons below need numbers
    values = {**DEFAULTS, **raw}
    if values["PRUNE_FAILED_AFTER_DAYS"] < values["PRUNE_AFTER_DAYS"]:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['PRUNE_FAILED_AFTER_DAYS'] is below 'PRUNE_AFTER_DAYS': "
                "failed notices are kept as long as the others, not shorter.",
                hint="Keep failed notices longer, so someone can still replay them.",
                id=check_id("W020"),
            )
        )
    return messages


def _check_mode(raw: dict[str, Any]) -> list[CheckMessage]:
    mode = raw.get("PROCESSING", DEFAULTS["PROCESSING"])
    if mode not in PROCESSING_MODES:
        return [
            Error(
                f"{SETTINGS_NAME}['PROCESSING'] is {mode!r}.",
                hint=f"Use one of {', '.join(PROCESSING_MODES)}.",
                id=check_id("E004"),
            )
        ]
    if mode != "celery":
        return []
    if importlib.util.find_spec("celery") is None:
        return [
            Error(
                f"{SETTINGS_NAME}['PROCESSING'] is 'celery' but Celery is not installed.",
                hint="Install the 'celery' extra (topview-callbacks[celery]), or use 'inline'.",
                id=check_id("E007"),
            )
        ]
    if (
        not settings.DEBUG
        and not getattr(settings, "CELERY_DB_REUSE_MAX", None)
        and notice_connection().vendor == "postgresql"
    ):
        # Read from Django settings, where app.config_from_object(..., namespace="CELERY")
        # finds it; looking at a Celery app here could create Celery's fallback app.
        return [
            Warning(
                "CELERY_DB_REUSE_MAX is not set, so Celery closes the database connection "
                "after every task and each Topview notice opens a new one in the worker: "
                "processing runs at about half the rate.",
                hint="Set CELERY_DB_REUSE_MAX = 1000 in your settings (read by your Celery "
                "app with namespace='CELERY') and keep CONN_MAX_AGE above 0. If your Celery "
                "app is configured elsewhere, set it there and silence this check.",
                id=check_id("W022"),
            )
        ]
    return []


def _check_numbers(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in (*_POSITIVE_KEYS, "RETRY_BACKOFF"):
        value = raw.get(key, DEFAULTS[key])
        zero_allowed = key == "RETRY_BACKOFF"
        if not is_number(value) or value < 0 or (value == 0 and not zero_allowed):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}[{key!r}] must be a "
                    f"{'non-negative' if zero_allowed else 'positive'} number.",
                    id=check_id("E020"),
                )
            )
    return messages
