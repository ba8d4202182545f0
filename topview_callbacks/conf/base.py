"""What every family of settings shares: where the dict lives and how a key is read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.conf import settings as django_settings

SETTINGS_NAME = "TOPVIEW_CALLBACKS"


class SettingsReader:
    """Reads ``settings.TOPVIEW_CALLBACKS`` afresh on every access (``override_settings`` works)."""

    #: Every key's default; set once on the class that joins the families (``conf.DEFAULTS``).
    defaults: ClassVar[Mapping[str, Any]] = {}

    @property
    def raw(self) -> dict[str, Any]:
        value = getattr(django_settings, SETTINGS_NAME, {})
        return value if isinstance(value, dict) else {}

    def _get(self, key: str) -> Any:
        return self.raw.get(key, self.defaults[key])


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
