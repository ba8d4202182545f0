"""The Celery app (``celery -A tests.support.worker``) and the WSGI app
(``tests.support.worker:application``) of the processes the tests start.

In those processes (TOPVIEW_TEST_ROLE is set) it configures Django from the environment
(``process_env``) and connects the receiver that records its effects in Redis.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import django
from celery import Celery

from tests.support.recording import QUEUE, REDIS_DB_URL

ROLE = os.environ.get("TOPVIEW_TEST_ROLE")  # "worker" | "web" | "tasks-worker" | None
BROKER_URL = os.environ.get("TOPVIEW_TEST_BROKER", REDIS_DB_URL)
WORKER_READY = "topview-test-worker-ready"

if ROLE:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings as django_settings

    # The test decides retry timings etc. for the processes it starts.
    django_settings.TOPVIEW_CALLBACKS = {
        **django_settings.TOPVIEW_CALLBACKS,
        **json.loads(os.environ.get("TOPVIEW_TEST_OVERRIDES", "{}")),
    }
    # The worker tests drop its kept connection on purpose, to see it meet the broken
    # one and recover (jobs.database_unreachable): no health check hides it from them.
    django_settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    django.setup()

app = Celery("topview_tests", include=["topview_callbacks.tasks"])
app.conf.update(
    broker_url=BROKER_URL,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=int(os.environ.get("TOPVIEW_TEST_PREFETCH", "4")),
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("TOPVIEW_TEST_VISIBILITY", "3600")),
        # Look for messages of dead workers every second, not every ~100 s; a worker killed
        # while holding the restore lock must not block restores for the default 5 minutes.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 3,
    },
    worker_hijack_root_logger=False,
)
# As the README recommends: keep database connections across tasks (Celery closes them after
# every task otherwise). TOPVIEW_TEST_DB_REUSE_MAX=0 gives Celery's default.
app.conf.update(CELERY_DB_REUSE_MAX=int(os.environ.get("TOPVIEW_TEST_DB_REUSE_MAX", "1000")))
if os.environ.get("TOPVIEW_TEST_BEAT_SWEEP"):
    app.conf.beat_schedule = {
        "sweep": {
            "task": "topview_callbacks.sweep",
            "schedule": float(os.environ["TOPVIEW_TEST_BEAT_SWEEP"]),
        }
    }

if ROLE:
    from tests.support import recording
    from topview_callbacks import signals as _signals

    # The benchmarks count with the cheaper receiver (TOPVIEW_TEST_RECEIVER=counting).
    _receiver_name = os.environ.get("TOPVIEW_TEST_RECEIVER", "recording")
    _receiver = getattr(recording, f"{_receiver_name}_receiver")
    _signals.task_outcome.connect(_receiver, dispatch_uid="topview-test-recorder")

if ROLE == "worker":
    from celery.signals import worker_ready

    @worker_ready.connect
    def _say_ready(**kwargs: Any) -> None:
        # Whatever the log level, tell the test (reading the worker's output) it is ready.
        print(WORKER_READY, file=sys.stderr, flush=True)


if ROLE == "web":
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
