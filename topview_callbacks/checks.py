"""System checks for the ``TOPVIEW_CALLBACKS`` settings. Ids are stable: never reuse one."""

from __future__ import annotations

import importlib.util
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections, router

from topview_callbacks.conf import DEFAULTS, PROCESSING_MODES, SETTINGS_NAME, topview_settings

MIN_TOKEN_LENGTH = 16
SUPPORTED_VENDORS = ("postgresql", "sqlite")


def _id(code: str) -> str:
    return f"topview_callbacks.{code}"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTINGS_NAME, None)
    if not isinstance(raw, dict):
        return [
            Error(
                f"{SETTINGS_NAME} must be a dict.",
                hint=f'Add {SETTINGS_NAME} = {{"UID": "...", "API_KEY": "..."}} to your settings.',
                id=_id("E001"),
            )
        ]
    messages: list[CheckMessage] = []
    messages += _check_accounts(raw)
    messages += _check_values(raw)
    messages += _check_notice_url(raw)
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        messages.append(
            Warning(
                f"{SETTINGS_NAME} has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(DEFAULTS)}.",
                id=_id("W002"),
            )
        )
    return messages


def _check_accounts(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    extra = raw.get("ACCOUNTS", {})
    if not isinstance(extra, dict):
        messages.append(
            Error(f"{SETTINGS_NAME}['ACCOUNTS'] must be a dict of dicts.", id=_id("E003"))
        )
        extra = {}
    for name, values in extra.items():
        if not isinstance(values, dict) or not values.get("UID"):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['ACCOUNTS'][{name!r}] needs a 'UID'.",
                    hint='Use {"UID": "...", "API_KEY": "..."}.',
                    id=_id("E003"),
                )
            )
    accounts = topview_settings.accounts
    if not any(account.uid for account in accounts.values()):
        messages.append(
            Error(
                "No Topview UID is configured, so every notice would be refused.",
                hint=f"Set {SETTINGS_NAME}['UID'] to the UID under 'API Settings' in Topview.",
                id=_id("E002"),
            )
        )
    uids = [account.uid for account in accounts.values() if account.uid]
    if len(uids) != len(set(uids)):
        messages.append(
            Warning(
                "Two Topview accounts share one UID; their notices cannot be told apart.",
                id=_id("W005"),
            )
        )
    for account in accounts.values():
        if account.uid and not account.api_key:
            messages.append(
                Warning(
                    f"Topview account {account.name!r} has no API_KEY: notices are received, "
                    "but submitting, querying and polling cannot work.",
                    id=_id("W006"),
                )
            )
    return messages


def _check_values(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    mode = raw.get("PROCESSING", DEFAULTS["PROCESSING"])
    if mode not in PROCESSING_MODES:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['PROCESSING'] is {mode!r}.",
                hint=f"Use one of {', '.join(PROCESSING_MODES)}.",
                id=_id("E004"),
            )
        )
    elif mode == "celery" and importlib.util.find_spec("celery") is None:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['PROCESSING'] is 'celery' but Celery is not installed.",
                hint="pip install 'topview-callbacks[celery]', or use 'inline'.",
                id=_id("E007"),
            )
        )
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
                id=_id("E005"),
            )
        )
    for key in ("MAX_BODY_SIZE", "REQUEST_TIMEOUT"):
        value = raw.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            messages.append(
                Error(f"{SETTINGS_NAME}[{key!r}] must be a positive number.", id=_id("E006"))
            )
    vendor = _notice_connection().vendor
    if vendor not in SUPPORTED_VENDORS:
        messages.append(
            Error(
                f"topview_callbacks stores notices with INSERT ... ON CONFLICT ... RETURNING, "
                f"which the {vendor!r} backend does not support.",
                hint="Route the topview_callbacks models to a PostgreSQL or SQLite database.",
                id=_id("E008"),
            )
        )
    elif vendor == "postgresql" and not settings.DEBUG:
        db_settings = _notice_connection().settings_dict
        if not db_settings.get("CONN_MAX_AGE") and not db_settings.get("OPTIONS", {}).get("pool"):
            messages.append(
                Warning(
                    "CONN_MAX_AGE is 0: every Topview notice opens a new database connection, "
                    "which makes the endpoint about 7 times slower.",
                    hint="Set CONN_MAX_AGE (e.g. 60) or OPTIONS['pool'] on the database.",
                    id=_id("W004"),
                )
            )
    return messages


def _check_notice_url(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for account in topview_settings.accounts.values():
        url = account.notice_url
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            messages.append(
                Error(
                    f"NOTICE_URL of account {account.name!r} is not an http(s) URL: {url!r}.",
                    id=_id("E009"),
                )
            )
        elif parts.scheme != "https" and not settings.DEBUG:
            messages.append(
                Warning(
                    f"NOTICE_URL of account {account.name!r} is not https while DEBUG is off: "
                    "notices would cross the internet in clear text.",
                    hint="Serve the endpoint over TLS and give Topview its https:// URL.",
                    id=_id("W001"),
                )
            )
        tokens = topview_settings.notice_tokens
        if tokens and not any(f"/{token}/" in parts.path + "/" for token in tokens):
            messages.append(
                Warning(
                    f"NOTICE_TOKENS is set but NOTICE_URL of account {account.name!r} holds "
                    "none of them, so Topview's notices would be refused.",
                    hint="Put one token at the end: https://example.com/topview/notice/<token>/",
                    id=_id("W007"),
                )
            )
    if not raw.get("NOTICE_URL") and not any(
        a.notice_url for a in topview_settings.accounts.values()
    ):
        messages.append(
            Warning(
                "NOTICE_URL is not set: tasks are submitted without noticeUrl, so only "
                "polling learns their outcome.",
                hint="Set it to the public URL of topview_callbacks:notice.",
                id=_id("W003"),
            )
        )
    return messages


def _notice_connection() -> Any:
    """The database connection notices are written to."""
    from topview_callbacks.models import Notice

    return connections[router.db_for_write(Notice)]


# Processing, retry, sweep and prune settings (ids E020+, W020+).
_POSITIVE_KEYS = (
    "MAX_ATTEMPTS",
    "RETRY_BACKOFF_MAX",
    "SWEEP_AFTER",
    "PRUNE_AFTER_DAYS",
    "PRUNE_FAILED_AFTER_DAYS",
)


@register(Tags.compatibility)
def check_processing_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, SETTINGS_NAME, None)
    if not isinstance(raw, dict):
        return []  # E001 already says so.
    messages: list[CheckMessage] = []
    for key in (*_POSITIVE_KEYS, "RETRY_BACKOFF"):
        value = raw.get(key, DEFAULTS[key])
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or value < 0 or (value == 0 and key != "RETRY_BACKOFF"):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}[{key!r}] must be a "
                    f"{'non-negative' if key == 'RETRY_BACKOFF' else 'positive'} number.",
                    id=_id("E020"),
                )
            )
    if messages:
        return messages
    if raw.get("PRUNE_FAILED_AFTER_DAYS", DEFAULTS["PRUNE_FAILED_AFTER_DAYS"]) < raw.get(
        "PRUNE_AFTER_DAYS", DEFAULTS["PRUNE_AFTER_DAYS"]
    ):
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['PRUNE_FAILED_AFTER_DAYS'] is below 'PRUNE_AFTER_DAYS': "
                "failed notices are kept as long as the others, not shorter.",
                hint="Keep failed notices longer, so someone can still replay them.",
                id=_id("W020"),
            )
        )
    if (
        raw.get("PROCESSING") == "celery"
        and not settings.DEBUG
        and not getattr(settings, "CELERY_DB_REUSE_MAX", None)
        and _notice_connection().vendor == "postgresql"
    ):
        # Read from Django settings, where app.config_from_object(..., namespace="CELERY")
        # finds it; looking at a Celery app here could create Celery's fallback app.
        messages.append(
            Warning(
                "CELERY_DB_REUSE_MAX is not set, so Celery closes the database connection "
                "after every task and each Topview notice opens a new one in the worker: "
                "processing runs at about half the rate.",
                hint="Set CELERY_DB_REUSE_MAX = 1000 in your settings (read by your Celery "
                "app with namespace='CELERY') and keep CONN_MAX_AGE above 0. If your Celery "
                "app is configured elsewhere, set it there and silence this check.",
                id=_id("W022"),
            )
        )
    if raw.get("SWEEP_AFTER", DEFAULTS["SWEEP_AFTER"]) < 30:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['SWEEP_AFTER'] is under 30 seconds: a receiver still running "
                "after that long is considered dead and may be run a second time.",
                hint="Set it above the longest time your receivers take (default 300).",
                id=_id("W021"),
            )
        )
    return messages


# Polling fallback (polling.reconcile).
_MIN_SAFE_TASK_MAX_AGE = 24 * 60 * 60  # off-peak tasks may take a day (topview-api.md §8)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@register(Tags.compatibility)
def check_polling_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from topview_callbacks.biz_types import SPECS

    raw = getattr(settings, SETTINGS_NAME, None)
    if not isinstance(raw, dict):
        return []  # E001 already says so.
    messages: list[CheckMessage] = []
    poll_after = raw.get("POLL_AFTER", DEFAULTS["POLL_AFTER"])
    delays = poll_after if isinstance(poll_after, dict) else {"default": poll_after}
    if not all(_is_number(value) and value >= 0 for value in delays.values()):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['POLL_AFTER'] must be seconds (a number >= 0), or a dict of "
                "bizType -> seconds with an optional 'default'.",
                hint='For example {"default": 900, "M2V_EXPORT": 3600}.',
                id=_id("E010"),
            )
        )
    unknown = sorted(set(delays) - set(SPECS) - {"default"}) if isinstance(poll_after, dict) else []
    if unknown:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['POLL_AFTER'] names unknown bizTypes: {', '.join(unknown)}.",
                hint="Use the bizType strings Topview sends, e.g. M2V_PREVIEW, or 'default'.",
                id=_id("W011"),
            )
        )
    for key in ("POLL_MAX_INTERVAL", "TASK_MAX_AGE", "RECONCILE_BATCH_SIZE"):
        value = raw.get(key, DEFAULTS[key])
        if not _is_number(value) or value <= 0:
            messages.append(
                Error(f"{SETTINGS_NAME}[{key!r}] must be a positive number.", id=_id("E011"))
            )
    backoff = raw.get("POLL_BACKOFF", DEFAULTS["POLL_BACKOFF"])
    if not _is_number(backoff) or backoff < 1:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['POLL_BACKOFF'] must be a number >= 1 (1: a fixed interval).",
                id=_id("E012"),
            )
        )
    max_age = raw.get("TASK_MAX_AGE", DEFAULTS["TASK_MAX_AGE"])
    if _is_number(max_age) and 0 < max_age < _MIN_SAFE_TASK_MAX_AGE:
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['TASK_MAX_AGE'] is under 24 hours: off-peak Topview tasks can "
                "take that long and would be marked expired before they finish.",
                hint="Leave the default (48 h) unless you never submit off-peak tasks.",
                id=_id("W010"),
            )
        )
    return messages
