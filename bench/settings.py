"""The example project on PostgreSQL, as a production site would run it, plus the bare view."""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "bench.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DATABASE", "topview_bench"),
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "CONN_MAX_AGE": 600,
    }
}
TOPVIEW_CALLBACKS = {
    "UID": "bench-uid",
    "API_KEY": "bench-key",
    "NOTICE_URL": "https://example.com/topview/notice/",
    # "manual": the request path only stores; processing is measured separately.
    "PROCESSING": os.environ.get("BENCH_PROCESSING", "manual"),
    "ASYNC_PROCESSED_MARK": os.environ.get("BENCH_ASYNC_MARK") == "1",
    "PREPARED_STATEMENTS": os.environ.get("BENCH_PREPARED") == "1",
}
LOGGING = {"version": 1, "disable_existing_loggers": True}
