"""Shared fixtures. Tests marked ``postgres`` run only on the PostgreSQL run of the suite.

The code behind them lives in tests/support/, which imports nothing from here; no test
module imports another or this one (tests/test_suite_layout.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.dispatch import Signal

from tests.support.archive import ARCHIVED_SIZE
from tests.support.media_server import MediaServer
from tests.support.settings import ON_POSTGRES
from topview_callbacks import signals

# Fixtures defined in support modules: the browser and its pages.
pytest_plugins = ["tests.support.browser"]

SERVICES_REQUIRED = (
    os.environ.get("CI") == "true" or os.environ.get("TOPVIEW_REQUIRE_SERVICES") == "1"
)


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Redis (real Celery workers): skipped without it, except in CI where it must be up.
    redis_items = [item for item in items if "redis" in item.keywords]
    if redis_items and not _redis_reachable():
        if SERVICES_REQUIRED:
            raise pytest.UsageError("Redis is required here but nothing answers at 127.0.0.1:6379.")
        skip_redis = pytest.mark.skip(reason="needs Redis: nothing answers at 127.0.0.1:6379")
        for item in redis_items:
            item.add_marker(skip_redis)
    # moto's standalone S3 server (archiving to S3): skipped without it, except in CI.
    s3_items = [item for item in items if "s3" in item.keywords]
    if s3_items and not shutil.which("moto_server", path=os.path.dirname(sys.executable)):
        if SERVICES_REQUIRED:
            raise pytest.UsageError("moto_server is required here: pip install 'moto[server]'.")
        skip_s3 = pytest.mark.skip(reason="needs moto_server: pip install 'moto[server]'")
        for item in s3_items:
            item.add_marker(skip_s3)
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(
        reason="needs PostgreSQL: runs in the second half of `make test` "
        "(TOPVIEW_TEST_DATABASE=postgres)"
    )
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"topview_callbacks test database: {settings.DATABASES['default']['ENGINE']}"


class SignalRecorder:
    """Records every send of a signal: ``calls`` holds the keyword arguments."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.calls: list[dict[str, Any]] = []
        signal.connect(self, weak=False)

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append({"sender": sender, **kwargs})

    def disconnect(self) -> None:
        self.signal.disconnect(self)


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """The cache emptied around the test: the dashboard caches what it counted."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def record_signal() -> Iterator[Any]:
    """``record_signal(signals.m2v_preview)`` returns a recorder, disconnected after the test."""
    recorders: list[SignalRecorder] = []

    def start(signal: Signal = signals.task_outcome) -> SignalRecorder:
        recorder = SignalRecorder(signal)
        recorders.append(recorder)
        return recorder

    yield start
    for recorder in recorders:
        recorder.disconnect()


@pytest.fixture
def failing_receiver() -> Iterator[Any]:
    """A ``task_outcome`` receiver that raises until ``fixed`` is set; counts its calls."""

    class Receiver:
        fixed = False
        calls = 0

        def __call__(self, sender: Any, **kwargs: Any) -> None:
            Receiver.calls += 1
            if not Receiver.fixed:
                raise RuntimeError("the receiver is broken")

    receiver = Receiver()
    signals.task_outcome.connect(receiver, weak=False)
    yield Receiver
    signals.task_outcome.disconnect(receiver)


# --- archiving: a media server on 127.0.0.1 and settings that let the tests fetch from it ---


@pytest.fixture
def server() -> Iterator[MediaServer]:
    """``tests.support.media_server.MediaServer`` serving ``ARCHIVED_SIZE``-byte files."""
    server = MediaServer(size=ARCHIVED_SIZE).start()
    yield server
    server.stop()


@pytest.fixture
def archive_settings(settings: Any, tmp_path: Path) -> Any:
    """ARCHIVE_MEDIA on, http and 127.0.0.1 allowed, files in ``tmp_path/media``; the URLs
    of the tests' results are fetched as they are (no Topview to confirm them with)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    settings.TOPVIEW_CALLBACKS = {
        **settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_MEDIA": True,
        "ARCHIVE_CONFIRM_URLS": False,
        "ARCHIVE_ALLOW_INSECURE": True,
        "ARCHIVE_HOSTS": ["127.0.0.1"],
        "ARCHIVE_MAX_BYTES": 1_000_000,
        "ARCHIVE_TIMEOUT": 1.0,
        "RETRY_BACKOFF": 0,
        "MAX_ATTEMPTS": 3,
    }
    return settings


# --- processes the tests start: workers, gunicorn (tests/support/) ---------------------------


@pytest.fixture
def db_name(transactional_db: None) -> str:
    """The test database's name, for the processes a test starts (they see what it commits)."""
    from django.db import connection

    return str(connection.settings_dict["NAME"])


@pytest.fixture
def redis_records() -> Iterator[None]:
    """The Redis keys where other processes' receivers record what they did, wiped around
    the test."""
    from tests.support.recording import cleanup_redis

    cleanup_redis()
    yield
    cleanup_redis()


@pytest.fixture
def running() -> Iterator[list[Any]]:
    """Services a test starts; all stopped (and their logs removed) afterwards."""
    services: list[Any] = []
    yield services
    for service in reversed(services):
        service.stop()
        service.log.unlink(missing_ok=True)


@pytest.fixture
def uid() -> str:
    from topview_callbacks.conf import topview_settings

    return topview_settings.uid


@pytest.fixture
def receiver_rows(db_name: str, redis_records: None) -> Iterator[Any]:
    """Receivers in other processes write a row per run into ``RECEIVER_ROWS`` (the
    user's own data); returns a function counting the committed rows per notice uuid."""
    from django.db import connection

    from tests.support.recording import RECEIVER_ROWS, key, records

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {RECEIVER_ROWS} (uuid text NOT NULL)")
        cursor.execute(f"TRUNCATE {RECEIVER_ROWS}")
    records().set(key("rows"), 1)

    def count() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT uuid, count(*) FROM {RECEIVER_ROWS} GROUP BY uuid")
            return {uuid: int(n) for uuid, n in cursor.fetchall()}

    yield count
    records().delete(key("rows"))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {RECEIVER_ROWS}")
