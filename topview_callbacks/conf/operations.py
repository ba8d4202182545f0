"""The operators' side: retention, health thresholds, metrics, the admin's previews."""

from __future__ import annotations

from typing import Any

from topview_callbacks.conf.base import SettingsReader, strings

DEFAULTS: dict[str, Any] = {
    # Days after which processed, duplicate and ignored notices are pruned.
    "PRUNE_AFTER_DAYS": 90,
    # Days after which failed notices are pruned (kept longer: someone may replay them).
    "PRUNE_FAILED_AFTER_DAYS": 365,
    # PostgreSQL: notices in a table partitioned by month, old months dropped whole by
    # topview_prune (docs/operations.md). Off: one plain table, the same on every database.
    "PARTITION_NOTICES": False,
    # Thresholds of `manage.py topview_health` (and its health-check plugin, the dashboard and
    # the metrics' gauges): any of HEALTH_DEFAULTS' keys; the others keep their default.
    "HEALTH": {},
    # True: count the pipeline's events for Prometheus (needs the `metrics` extra).
    "METRICS": False,
    # A bearer token that may read the metrics URL (staff with view permission always may).
    "METRICS_TOKEN": "",
    # Hosts whose media the admin may preview (on a click; "example.com" also covers its
    # subdomains). [] previews any http(s) URL on a click; other URLs are shown as text.
    "MEDIA_PREVIEW_HOSTS": [],
    # The database alias (of DATABASES) the admin's changelists, the dashboard and the
    # health measurements read from, a replica say; None: where the router reads them.
    # Processing, polling, pruning and archiving always read the primary.
    "READ_DATABASE": None,
}

#: The health thresholds (``HEALTH`` overrides any of them); docs/operations.md explains each.
HEALTH_DEFAULTS: dict[str, float] = {
    # The oldest pending or processing notice, in multiples of SWEEP_AFTER: beyond it the
    # sweep is not running (warning) or cannot keep up (critical).
    "STUCK_WARNING_FACTOR": 2.0,
    "STUCK_CRITICAL_FACTOR": 6.0,
    # Notices whose receivers failed, received in the last 24 hours.
    "FAILED_24H_WARNING": 1,
    "FAILED_24H_CRITICAL": 50,
    # Open tasks whose poll time passed more than OVERDUE_GRACE_SECONDS ago (no reconcile).
    "OVERDUE_GRACE_SECONDS": 900,
    "OVERDUE_WARNING": 1,
    "OVERDUE_CRITICAL": 100,
    # Hours without any notice while tasks are open (callbacks are not reaching us).
    "SILENCE_WARNING_HOURS": 6,
    "SILENCE_CRITICAL_HOURS": 24,
    # Rejected deliveries in the last hour, for any reason ...
    "REJECTIONS_WARNING": 10,
    # ... and those that carried one of this site's credentials but failed another (a
    # settings mistake that loses results: rejections.MISCONFIGURATION_REASONS). A request
    # with none of them (a scanner, a guess) only counts towards the warning.
    "MISCONFIGURATION_CRITICAL": 1,
    # Queued submissions whose answer was lost (uncertain): each waits for a person.
    "UNCERTAIN_WARNING": 1,
    "UNCERTAIN_CRITICAL": 20,
    # An account's remaining credit at or below these (0: not checked, no call to Topview);
    # read through the dashboard's cache, so at most one credit call per account per 5 min.
    "CREDIT_WARNING": 0,
    "CREDIT_CRITICAL": 0,
}


class OperationsSettings(SettingsReader):
    @property
    def prune_after_days(self) -> int:
        return int(self._get("PRUNE_AFTER_DAYS"))

    @property
    def prune_failed_after_days(self) -> int:
        return int(self._get("PRUNE_FAILED_AFTER_DAYS"))

    @property
    def partition_notices(self) -> bool:
        return bool(self._get("PARTITION_NOTICES"))

    @property
    def health(self) -> dict[str, float]:
        """``HEALTH_DEFAULTS`` updated with the ``HEALTH`` setting's known keys."""
        value = self._get("HEALTH")
        given = value if isinstance(value, dict) else {}
        return {key: float(given.get(key, default)) for key, default in HEALTH_DEFAULTS.items()}

    @property
    def metrics(self) -> bool:
        return bool(self._get("METRICS"))

    @property
    def metrics_token(self) -> str:
        return str(self._get("METRICS_TOKEN") or "")

    @property
    def read_database(self) -> str | None:
        """The alias the admin, the dashboard and health read from (None: the router's)."""
        value = self._get("READ_DATABASE")
        return str(value) if value else None

    @property
    def media_preview_hosts(self) -> list[str]:
        return [host.lower().strip(".") for host in strings(self._get("MEDIA_PREVIEW_HOSTS"))]
