"""The polling fallback: when a task whose notice has not come is queried, and given up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from topview_callbacks.conf.base import SettingsReader

DEFAULTS: dict[str, Any] = {
    # Polling fallback (polling.reconcile): seconds after submit before a task whose
    # notice has not come is queried, per bizType; "default" covers the others.
    "POLL_AFTER": {"default": 15 * 60},
    # After each poll that finds the task unfinished, the wait grows by this factor
    # (1 = a fixed interval) ...
    "POLL_BACKOFF": 2.0,
    # ... up to this many seconds between two polls of one task.
    "POLL_MAX_INTERVAL": 60 * 60,
    # Seconds after submit when a task still without outcome is marked expired (signal
    # task_expired). Off-peak tasks can take 24 h, so the default leaves a margin.
    "TASK_MAX_AGE": 48 * 60 * 60,
}


class PollingSettings(SettingsReader):
    def poll_after(self, biz_type: str) -> timedelta:
        """How long after submit a ``biz_type`` task waits for its notice before a poll."""
        value = self._get("POLL_AFTER")
        if isinstance(value, dict):
            value = value.get(biz_type, value.get("default", DEFAULTS["POLL_AFTER"]["default"]))
        return timedelta(seconds=float(value))

    @property
    def poll_backoff(self) -> float:
        return float(self._get("POLL_BACKOFF"))

    @property
    def poll_max_interval(self) -> timedelta:
        return timedelta(seconds=float(self._get("POLL_MAX_INTERVAL")))

    @property
    def task_max_age(self) -> timedelta:
        return timedelta(seconds=float(self._get("TASK_MAX_AGE")))
