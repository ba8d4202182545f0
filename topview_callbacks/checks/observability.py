"""Checks of health thresholds, metrics and the dashboard (E050-E053, W050)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, is_number, settings_check
from topview_callbacks.conf import DEFAULTS, HEALTH_DEFAULTS, SETTINGS_NAME

MIN_METRICS_TOKEN_LENGTH = 16


@settings_check
def check_observability(raw: dict[str, Any]) -> list[CheckMessage]:
    return [*_check_health(raw), *_check_metrics(raw)]


def _check_health(raw: dict[str, Any]) -> list[CheckMessage]:
    value = raw.get("HEALTH", DEFAULTS["HEALTH"])
    if not isinstance(value, dict):
        return [Error(f"{SETTINGS_NAME}['HEALTH'] must be a dict.", id=check_id("E050"))]
    unknown = sorted(set(value) - set(HEALTH_DEFAULTS))
    known = set(value) & set(HEALTH_DEFAULTS)
    wrong = sorted(key for key in known if not _non_negative(value[key]))
    if not unknown and not wrong:
        return []
    problems = [f"unknown keys {', '.join(unknown)}"] if unknown else []
    problems += [f"not numbers >= 0: {', '.join(wrong)}"] if wrong else []
    return [
        Error(
            f"{SETTINGS_NAME}['HEALTH'] has {'; '.join(problems)}.",
            hint=f"Known keys: {', '.join(HEALTH_DEFAULTS)}.",
            id=check_id("E050"),
        )
    ]


def _check_metrics(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    if raw.get("METRICS") and importlib.util.find_spec("prometheus_client") is None:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['METRICS'] is on but prometheus-client is not installed.",
                hint="Install the 'metrics' extra (topview-callbacks[metrics]).",
                id=check_id("E051"),
            )
        )
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if raw.get("METRICS") and directory and not os.path.isdir(directory):
        messages.append(
            Warning(
                f"PROMETHEUS_MULTIPROC_DIR is {directory!r}, which is not a directory: "
                "every metric update will fail.",
                hint="Create it (empty) before the workers start, e.g. in gunicorn's on_starting.",
                id=check_id("W050"),
            )
        )
    return messages


@settings_check
def check_metrics_token(raw: dict[str, Any]) -> list[CheckMessage]:
    """E052, tagged security: the token that may read the metrics is guessable."""
    token = raw.get("METRICS_TOKEN", DEFAULTS["METRICS_TOKEN"])
    if not token or (isinstance(token, str) and len(token) >= MIN_METRICS_TOKEN_LENGTH):
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['METRICS_TOKEN'] must be a string of at least "
            f"{MIN_METRICS_TOKEN_LENGTH} characters.",
            hint="Make one: python -c 'import secrets; print(secrets.token_urlsafe(24))'",
            id=check_id("E052"),
        )
    ]


def _non_negative(value: Any) -> bool:
    return is_number(value) and value >= 0
