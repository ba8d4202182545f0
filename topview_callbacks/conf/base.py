"""What every family of settings shares: where the dict lives and how a key is read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, cast

from django.conf import settings as django_settings
from django.core.signals import setting_changed

SETTINGS_NAME = "TOPVIEW_CALLBACKS"
T = TypeVar("T")

# The settings dict and what properties build from it (``SettingsReader.derived``), kept
# until ``setting_changed`` (which ``override_settings`` sends): the request path reads a
# dozen keys, and each lookup through Django's lazy settings costs about a microsecond.
_derived: dict[str, Any] = {}


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        _derived.clear()


setting_changed.connect(_forget, dispatch_uid="topview_callbacks_settings")


def _look_up() -> dict[str, Any]:
    value = getattr(django_settings, SETTINGS_NAME, {})
    return value if isinstance(value, dict) else {}


class SettingsReader:
    """Reads ``settings.TOPVIEW_CALLBACKS``: a new dict (``override_settings``) from its
    ``setting_changed`` on. Keys are read from the dict itself at each access; what is
    ``derived`` from them (the accounts) is kept until the next ``setting_changed``."""

    #: Every key's default; set once on the class that joins the families (``conf.DEFAULTS``).
    defaults: ClassVar[Mapping[str, Any]] = {}

    @property
    def raw(self) -> dict[str, Any]:
        return self.derived("raw", _look_up)

    def _get(self, key: str) -> Any:
        return self.raw.get(key, self.defaults[key])

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """``build()``'s value, built once until the settings change (``setting_changed``):
        for what the request path needs every time and costs more than a key's read."""
        if name not in _derived:
            _derived[name] = build()
        return cast(T, _derived[name])


def strings(value: Any) -> list[str]:
    """A list setting as strings; a malformed value fails closed.

    A bare string or a number (reported by a system check: E005, E030) becomes one entry
    that matches nothing real, never an empty list (which would switch a protection off)
    nor a list of characters.
    """
    if not value:
        return []
    if not isinstance(value, (list, tuple)):
        return [str(value)]
    return [str(item) for item in value]
