"""Minimal settings for the test suite.

TOPVIEW_TEST_DATABASE=postgres runs the suite on the machine's PostgreSQL
(127.0.0.1:5432, database ``test``); the default is SQLite, which needs no service.
"""

from __future__ import annotations

import os
import tempfile

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
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "test"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "CONN_MAX_AGE": 60,
            "TEST": {"NAME": os.environ.get("TOPVIEW_TEST_PG_NAME", "test_topview_callbacks")},
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

TOPVIEW_CALLBACKS = {
    "UID": "test-uid-NsDAaOPF4jLu",
    "API_KEY": "sk-test-key",
    "NOTICE_URL": "https://example.com/topview/notice/",
    "API_BASE_URL": "https://api.topview.test",
    "ACCOUNTS": {"brand-b": {"UID": "test-uid-brand-b", "API_KEY": "sk-brand-b"}},
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
