"""Minimal settings for the test suite.

TOPVIEW_TEST_DATABASE=postgres runs the suite on the machine's PostgreSQL
(127.0.0.1:5432, database ``test``); the default is SQLite, which needs no service.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
# Archived media land here unless a test sets its own storage (never in the repository).
MEDIA_ROOT = os.environ.get(
    "TOPVIEW_TEST_MEDIA_ROOT", os.path.join(tempfile.gettempdir(), "topview-test-media")
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "topview_callbacks",
]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a test hiding the package raises here
        return False


# Django's Tasks framework, when installed: django.tasks (Django 6.0+) or the django-tasks
# backport, with django-tasks-db's database backend (tests/test_tasks_worker.py runs its
# worker). PROCESSING="tasks" uses the "default" one unless TASKS_BACKEND says "database".
_TASKS = "django.tasks" if _importable("django.tasks") else "django_tasks"
if _TASKS == "django_tasks" and _importable("django_tasks"):
    INSTALLED_APPS.append("django_tasks")  # resets its backends when a test changes TASKS
if _importable(_TASKS):
    TASKS: dict[str, dict[str, Any]] = {
        "default": {"BACKEND": f"{_TASKS}.backends.immediate.ImmediateBackend"}
    }
if _importable(_TASKS) and _importable("django_tasks_db"):
    INSTALLED_APPS.append("django_tasks_db")
    TASKS["database"] = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

DATABASE_VENDOR = os.environ.get("TOPVIEW_TEST_DATABASE", "sqlite")
if DATABASE_VENDOR == "postgres":
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "test"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,  # as check W070 asks; the restart tests turn it off
            "TEST": {"NAME": os.environ.get("TOPVIEW_TEST_PG_NAME", "test_topview_callbacks")},
        }
    }
    # READ_DATABASE's tests read from this alias: a streaming replica of the server when
    # TOPVIEW_TEST_REPLICA_PORT names its port, else a second connection to the same one.
    DATABASES["replica"] = {
        **DATABASES["default"],
        "PORT": os.environ.get("TOPVIEW_TEST_REPLICA_PORT") or DATABASES["default"]["PORT"],
        "TEST": {"MIRROR": "default"},
    }
    # A project keeping the app's tables in a database of their own: tests/test_routing.py
    # routes them to this alias (a test database of its own, created for those tests only).
    DATABASES["notices"] = {
        **DATABASES["default"],
        "TEST": {"NAME": DATABASES["default"]["TEST"]["NAME"] + "_notices"},
    }
    if os.environ.get("TOPVIEW_TEST_PGBOUNCER") == "1":  # PGPORT is PgBouncer's: nox -s pgbouncer
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True  # as check W071 asks
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

TOPVIEW_CALLBACKS = {
    "UID": "test-uid-NsDAaOPF4jLu",
    "API_KEY": "sk-test-key",
    "NOTICE_URL": "https://example.com/topview/notice/",
    "API_BASE_URL": "https://api.topview.test",
    "ACCOUNTS": {"brand-b": {"UID": "test-uid-brand-b", "API_KEY": "sk-brand-b"}},
    # TOPVIEW_TEST_PARTITION_NOTICES=1 (with PostgreSQL): notices partitioned by month, as
    # nox -s partitioned runs the pipeline's tests.
    "PARTITION_NOTICES": os.environ.get("TOPVIEW_TEST_PARTITION_NOTICES") == "1",
}

# A host project's DRF defaults that must not change the callback contract.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": "1/day"},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.FormParser"],
    "EXCEPTION_HANDLER": "tests.urls.host_exception_handler",
    "COMPACT_JSON": False,
    "UNICODE_JSON": False,
}
