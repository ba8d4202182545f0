"""Gauges read from the database when Prometheus scrapes, with ``health.measure``'s indexed
queries: the truth is in the table, whichever process counted what."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from topview_callbacks import health


class PipelineCollector(Collector):
    """Backlog, failures, overdue tasks, recent rejections and each health probe's level.

    Registered on every scrape of ``exposition.latest``; to add it to a registry of your own
    (django-prometheus, say): ``REGISTRY.register(PipelineCollector())``. Scrape it from one
    target only: every process would report the same database.
    """

    def collect(self) -> Iterator[Metric]:
        m = health.measure()
        values = (
            ("topview_notices_pending", "Notices waiting for processing.", m.pending),
            ("topview_notices_retrying", "Failed notices whose retry is scheduled.", m.retrying),
            ("topview_notices_failed_now", "Notices in the failed state.", m.failed),
            ("topview_tasks_overdue", "Open tasks overdue past their poll time.", m.overdue_tasks),
            (
                "topview_oldest_waiting_notice_seconds",
                "Seconds the longest-waiting due notice has waited (0: none).",
                m.oldest_waiting_seconds,
            ),
        )
        for name, documentation, value in values:
            yield GaugeMetricFamily(name, documentation, value=float(value))
        rejected = GaugeMetricFamily(
            "topview_rejections_last_hour",
            "Deliveries refused in the last hour, by reason (from the database).",
            labels=["reason"],
        )
        for reason, count in sorted(m.rejection_reasons_1h.items()):
            rejected.add_metric([reason], float(count))
        yield rejected
        levels = GaugeMetricFamily(
            "topview_health_level",
            "Each health probe's level: 0 ok, 1 warning, 2 critical (topview_health).",
            labels=["check"],
        )
        for finding in health.evaluate(m):
            levels.add_metric([finding.name], float(finding.level))
        yield levels
