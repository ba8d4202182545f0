"""A host project as a user would have it: `startproject` defaults plus Django's
LoginRequiredMiddleware, its own DRF API documented by drf-spectacular, and this app.

Used by tests/test_host_project.py (in a subprocess: ``manage.py spectacular``) and by
scripts/check_contract.py, which serves it for schemathesis. HOSTPROJECT_DATABASE names a
SQLite file for a served copy; the default is an in-memory database.
"""

from __future__ import annotations

import os

SECRET_KEY = "hostproject-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
ROOT_URLCONF = "tests.hostproject.urls"
WSGI_APPLICATION = "tests.hostproject.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "topview_callbacks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs a logged-in user unless it says otherwise (Django 5.1+).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("HOSTPROJECT_DATABASE", ":memory:"),
    }
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {"TITLE": "Host project API", "VERSION": "1.0.0"}

# The contract's example UID, so the contract's example notice is accepted as sent.
NOTICE_TOKEN = "host-project-token-0123456789"
TOPVIEW_CALLBACKS = {
    "UID": "NsDAaOPF4jLu",
    "API_KEY": "sk-host-project",
    "NOTICE_URL": "https://host.example/topview/notice/",
    "API_BASE_URL": "http://127.0.0.1:9",  # nothing listens there: nothing leaves the machine
}
if os.environ.get("HOSTPROJECT_NOTICE_TOKENS") == "1":
    TOPVIEW_CALLBACKS["NOTICE_TOKENS"] = [NOTICE_TOKEN]
    TOPVIEW_CALLBACKS["NOTICE_URL"] = f"https://host.example/topview/notice/{NOTICE_TOKEN}/"
