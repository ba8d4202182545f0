"""Prometheus metrics of the pipeline (the ``metrics`` extra: ``prometheus-client``).

- ``instruments``: the counters and histograms, in prometheus-client's default registry;
- ``receivers``: fill them from the package's signals (connected when ``METRICS`` is on), so
  nothing in the pipeline imports this package;
- ``collector``: gauges read from the database at scrape time (``health.measure``);
- ``exposition``: one scrape's text, multiprocess-aware (gunicorn workers, Celery);
- ``view``: the optional ``topview_callbacks:metrics`` URL (staff or a bearer token).

docs/operations.md explains why Prometheus and how to run it with several processes.
"""
