"""What every check of the package shares: ids, the settings dict, and small tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

from topview_callbacks.conf import DEFAULTS, SETTINGS_NAME
from topview_callbacks.models import Notice

SettingsCheck = Callable[[dict[str, Any]], list[CheckMessage]]
DjangoCheck = Callable[..., list[CheckMessage]]


def check_id(code: str) -> str:
    return f"topview_callbacks.{code}"


def settings_check(check: SettingsCheck) -> DjangoCheck:
    """Adapt ``check(raw_settings_dict)`` to Django's check signature.

    A ``TOPVIEW_CALLBACKS`` that is not a dict is reported once, as E001, by
    ``check_settings_dict``; every other check then has nothing to say.
    """

    def run(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
        raw = getattr(settings, SETTINGS_NAME, None)
        return check(raw) if isinstance(raw, dict) else []

    # Not functools.wraps: Django inspects the signature, which must take **kwargs.
    run.__name__, run.__qualname__, run.__doc__ = check.__name__, check.__qualname__, check.__doc__
    return run


def check_settings_dict(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: the setting is not a dict; W002: it has keys this version does not know."""
    raw = getattr(settings, SETTINGS_NAME, None)
    if not isinstance(raw, dict):
        return [
            Error(
                f"{SETTINGS_NAME} must be a dict.",
                hint=f'Add {SETTINGS_NAME} = {{"UID": "...", "API_KEY": "..."}} to your settings.',
                id=check_id("E001"),
            )
        ]
    unknown = sorted(set(raw) - set(DEFAULTS))
    if not unknown:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME} has unknown keys: {', '.join(unknown)}.",
            hint=f"Known keys: {', '.join(DEFAULTS)}.",
            id=check_id("W002"),
        )
    ]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def notice_connection() -> BaseDatabaseWrapper:
    """The database connection notices are written to (not opened by the checks)."""
    return connections[router.db_for_write(Notice)]
