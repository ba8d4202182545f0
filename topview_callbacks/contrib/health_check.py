"""The pipeline's health as a django-health-check (4.x) check.

Add it to your ``HealthCheckView``::

    path("ht/", HealthCheckView.as_view(checks=[
        "health_check.checks.Database",
        "topview_callbacks.contrib.health_check.TopviewPipeline",
    ]))

A critical finding makes the check unavailable, a warning reports a warning; the message
names each finding, as ``manage.py topview_health`` does.
"""

from __future__ import annotations

import dataclasses

from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning

from topview_callbacks import health


@dataclasses.dataclass
class TopviewPipeline(HealthCheck):  # type: ignore[misc]  # health_check is untyped
    """Stuck, failed and overdue work, silence and rejected deliveries (``health.check``)."""

    def run(self) -> None:
        findings = health.check()
        level = health.worst(findings)
        if level == health.Level.OK:
            return
        message = "; ".join(
            f"{finding.name}: {finding.summary}" for finding in findings if finding.level
        )
        if level == health.Level.CRITICAL:
            raise ServiceUnavailable(message)
        raise ServiceWarning(message)
