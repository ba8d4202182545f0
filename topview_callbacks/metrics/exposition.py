"""One scrape: this process's instruments (or every process's, in multiprocess mode) and
the database gauges."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from topview_callbacks.metrics.collector import PipelineCollector


class _DefaultRegistry:
    """What prometheus-client's default registry holds, as one collector of another registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_mode() -> bool:
    """Whether ``PROMETHEUS_MULTIPROC_DIR`` is set: gunicorn workers write their samples there."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultRegistry())
    registry.register(PipelineCollector())
    return registry


def latest() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(scrape_registry()), CONTENT_TYPE_LATEST
