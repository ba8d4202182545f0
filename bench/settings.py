"""The example project on PostgreSQL, as a production site would run it, plus the bare views.

``BENCH_CANDIDATE`` picks how the inline path reaches PostgreSQL (bench/wsgi.py applies it):
"function" (the app as shipped: one PL/pgSQL function), "statements" (the statements one by
one, as on SQLite), "prepared" (those statements, prepared by psycopg: server-side binding
and ``prepare_threshold`` in ``DATABASES["OPTIONS"]``, which transaction-pooling PgBouncer
before 1.21 cannot carry).
"""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "bench.urls"
CANDIDATE = os.environ.get("BENCH_CANDIDATE", "function")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DATABASE", "topview_bench"),
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("PGPORT", "5432"),  # bench/run.py's psycopg reads PGPORT too
        "USER": "postgres",
        "CONN_MAX_AGE": 600,
        "OPTIONS": (
            {"server_side_binding": True, "prepare_threshold": 1} if CANDIDATE == "prepared" else {}
        ),
    }
}
if os.environ.get("BENCH_CONNECTIONS") == "closed":  # bench/servers.py: one per request
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if os.environ.get("BENCH_CONNECTIONS") == "pool":
    # bench/servers.py: under ASGI, psycopg's pool instead of kept connections, as Django's
    # documentation asks (needs psycopg[pool]).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 2, "max_size": 4}}
TOPVIEW_CALLBACKS = {
    "UID": "bench-uid",
    "API_KEY": "bench-key",
    "NOTICE_URL": "https://example.com/topview/notice/",
    # "manual": the request path only stores; processing is measured separately.
    "PROCESSING": os.environ.get("BENCH_PROCESSING", "manual"),
    # bench/partitions.py: notices partitioned by month (a database migrated with it on).
    "PARTITION_NOTICES": os.environ.get("BENCH_PARTITION_NOTICES") == "1",
}
LOGGING = {"version": 1, "disable_existing_loggers": True}
