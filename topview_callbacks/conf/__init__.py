"""The ``TOPVIEW_CALLBACKS`` settings dict, behind typed properties.

One module per family of settings (accounts, processing, polling, archiving, operations),
each with its keys' defaults and typed properties; ``topview_settings`` joins them. The
dict and what is built from it are cached until ``setting_changed`` (``base``), so
``override_settings`` takes effect at once. Nothing else in the package reads the dict
directly.
"""

from __future__ import annotations

from typing import Any

from topview_callbacks.conf import accounts, archiving, operations, polling, processing
from topview_callbacks.conf.accounts import DEFAULT_ACCOUNT, Account, AccountSettings
from topview_callbacks.conf.archiving import ARCHIVE_KINDS, ArchivingSettings
from topview_callbacks.conf.base import SETTINGS_NAME
from topview_callbacks.conf.operations import HEALTH_DEFAULTS, OperationsSettings
from topview_callbacks.conf.polling import PollingSettings
from topview_callbacks.conf.processing import PROCESSING_MODES, ProcessingSettings

__all__ = [
    "ARCHIVE_KINDS",
    "DEFAULTS",
    "DEFAULT_ACCOUNT",
    "HEALTH_DEFAULTS",
    "PROCESSING_MODES",
    "SETTINGS_NAME",
    "Account",
    "TopviewSettings",
    "topview_settings",
]

#: Every key and its default (docs/settings.md lists them; a test keeps the two equal).
DEFAULTS: dict[str, Any] = {
    **accounts.DEFAULTS,
    **processing.DEFAULTS,
    **polling.DEFAULTS,
    **archiving.DEFAULTS,
    **operations.DEFAULTS,
}


class TopviewSettings(
    AccountSettings, ProcessingSettings, PollingSettings, ArchivingSettings, OperationsSettings
):
    """Typed, always-fresh view of ``settings.TOPVIEW_CALLBACKS``."""

    defaults = DEFAULTS


topview_settings = TopviewSettings()
