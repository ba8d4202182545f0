"""Settings of the demo project: SQLite, no configuration needed.

Everything Topview-related can be overridden from the environment (TOPVIEW_UID,
TOPVIEW_API_KEY, TOPVIEW_NOTICE_URL, TOPVIEW_API_BASE_URL, TOPVIEW_ARCHIVE_MEDIA); never
commit real credentials. TOPVIEW_DEMO=1 (set by scripts/demo.sh) lets archiving fetch the
fake Topview's files from 127.0.0.1 over http: demo only.
"""

from __future__ import annotations

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

# Local demo only: a real project reads its secret from the environment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-insecure-key-for-local-demo-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "topview_callbacks",
    "example_project.apps.ExampleProjectConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("DATABASE_URL_POSTGRES"):
    # Used by bench/: the same project on the machine's PostgreSQL.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["DATABASE_URL_POSTGRES"],
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "CONN_MAX_AGE": 600,
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "example.sqlite3",
            # IMMEDIATE: concurrent writers queue for the lock instead of failing (Django 5.1+).
            "OPTIONS": {
                "timeout": 20,
                **({"transaction_mode": "IMMEDIATE"} if django.VERSION >= (5, 1) else {}),
            },
        }
    }

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
# Archived Topview outputs land here (the default storage); served by runserver in DEBUG.
MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "media/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TOPVIEW_CALLBACKS = {
    "UID": os.environ.get("TOPVIEW_UID", "demo-uid"),
    "API_KEY": os.environ.get("TOPVIEW_API_KEY", "demo-api-key"),
    "NOTICE_URL": os.environ.get("TOPVIEW_NOTICE_URL", "http://127.0.0.1:8000/topview/notice/"),
    "API_BASE_URL": os.environ.get("TOPVIEW_API_BASE_URL", "https://api.topview.ai"),
    "PROCESSING": os.environ.get("TOPVIEW_PROCESSING", "inline"),
    # Seconds before a task without notice is polled; the fake-server demo sets it low.
    "POLL_AFTER": {"default": float(os.environ.get("TOPVIEW_POLL_AFTER", 900))},
    # Copy each output file into MEDIA_ROOT (docs/archiving.md); the demo turns it on.
    "ARCHIVE_MEDIA": os.environ.get("TOPVIEW_ARCHIVE_MEDIA", "0") == "1",
}

if os.environ.get("TOPVIEW_DEMO") == "1":
    # DEMO ONLY (scripts/demo.sh sets TOPVIEW_DEMO=1). The fake Topview serves its output
    # files over plain http from 127.0.0.1, which archiving's SSRF rules refuse, rightly:
    # these three switches open exactly that hole, for the demo. Never set them on a real
    # site (check W040 says so when DEBUG is off). With only 127.0.0.1 allowed, the sample
    # notices' files (on Topview's CDN) show as "refused": the rule at work, no internet.
    TOPVIEW_CALLBACKS.update(
        {
            "ARCHIVE_ALLOW_INSECURE": True,
            "ARCHIVE_HOSTS": ["127.0.0.1"],
        }
    )
    # The demo script runs topview_archive_media every 10 s: the cron job W041 asks for.
    SILENCED_SYSTEM_CHECKS = ["topview_callbacks.W041"]

# Celery with Redis when a broker is configured (run `celery -A example_project worker -B`);
# inline processing in the web process otherwise.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or ""
if CELERY_BROKER_URL:
    TOPVIEW_CALLBACKS["PROCESSING"] = os.environ.get("TOPVIEW_PROCESSING", "celery")
    CELERY_TASK_IGNORE_RESULT = True
    # A notice's task is acknowledged late; Redis redelivers an unacknowledged one after
    # this many seconds (worker died). Keep it above the longest retry countdown.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    # Celery closes database connections after every task unless this is set, and a new
    # connection costs more than processing a notice. With it, CONN_MAX_AGE applies to the
    # notice task as to a web request (README: "Throughput").
    CELERY_DB_REUSE_MAX = 1000
    CELERY_BEAT_SCHEDULE = {
        "topview-sweep": {"task": "topview_callbacks.sweep", "schedule": 60.0},
        "topview-reconcile": {"task": "topview_callbacks.reconcile", "schedule": 300.0},
        "topview-send-queued": {"task": "topview_callbacks.send_queued", "schedule": 60.0},
        "topview-prune": {"task": "topview_callbacks.prune", "schedule": 24 * 3600.0},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "topview_callbacks": {"handlers": ["console"], "level": "INFO"},
        "example_project": {"handlers": ["console"], "level": "INFO"},
    },
}
