"""The example project's Celery app: ``celery -A example_project worker -l info``.

Configured from Django settings under the ``CELERY_`` prefix (``CELERY_BROKER_URL``...);
see example_project/settings.py, which turns it on when CELERY_BROKER_URL or REDIS_URL is set.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Finds topview_callbacks.tasks (and any tasks.py of the project's apps).
app.autodiscover_tasks()
