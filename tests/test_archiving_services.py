"""Archiving against real services: S3 (moto's standalone server, through django-storages),
and PostgreSQL (two workers at once; a worker killed mid-download)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

from tests.support.archive import ARCHIVED_SIZE, stored_files, task_with
from tests.support.media_server import MediaServer, body_for
from tests.support.processes import ROOT, Service, free_port, wait_for
from topview_callbacks import archiving
from topview_callbacks.models import ArchivedMedia, MediaState


@pytest.fixture
def moto() -> Iterator[str]:
    port = free_port()
    argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    service = Service("moto", argv, dict(os.environ))

    def answers() -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    service.start(answers, timeout=60)
    yield f"http://127.0.0.1:{port}"
    service.stop()


@pytest.mark.s3
@pytest.mark.django_db
def test_files_stream_into_s3_through_django_storages(
    moto: str, server: MediaServer, archive_settings: Any
) -> None:
    import boto3

    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", **credentials)
    s3.create_bucket(Bucket="archive")
    archive_settings.STORAGES = {
        **archive_settings.STORAGES,
        "topview": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "archive",
                "endpoint_url": moto,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
            },
        },
    }
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_STORAGE": "topview",
    }
    task = task_with(f"{server.url}/chunked/s3.mp4", f"{server.url}/ok/s3b.mp4")

    media = [archiving.archive_one(pk) for pk in task.archived_media.values_list("pk", flat=True)]

    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="archive")["Contents"])
    assert keys == [
        "topview/default/COMMON_TASK_TEXT2VIDEO/t1/video-0.mp4",
        "topview/default/COMMON_TASK_TEXT2VIDEO/t1/video-1.mp4",
    ]  # no partial object left
    stored = s3.get_object(Bucket="archive", Key=keys[0])
    body = stored["Body"].read()
    assert body == body_for("s3.mp4", ARCHIVED_SIZE)
    assert stored["ContentType"] == "video/mp4"
    assert [m.state for m in media if m] == [MediaState.ARCHIVED] * 2
    assert media[0] is not None and media[0].sha256 == hashlib.sha256(body).hexdigest()
    assert media[0].file.url.startswith(f"{moto}/archive/topview/")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_archiving_one_task_store_each_file_once(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    server.slow_delay = 0.005  # long enough for the two workers to overlap
    urls = [f"{server.url}/slow/{n}.mp4" for n in range(4)]
    task = task_with(*urls)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            archiving.archive_task(task.pk)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert [server.hits[f"/slow/{n}.mp4"] for n in range(4)] == [1, 1, 1, 1]
    assert set(ArchivedMedia.objects.values_list("state", flat=True)) == {MediaState.ARCHIVED}
    assert len(stored_files(tmp_path)) == 4


KILLED_WORKER = """
import json, os, django
from django.conf import settings
settings.TOPVIEW_CALLBACKS = json.loads(os.environ["T_TOPVIEW"])
settings.STORAGES = json.loads(os.environ["T_STORAGES"])
django.setup()
from topview_callbacks import archiving
archiving.archive_one(int(os.environ["T_MEDIA"]))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_download_leaves_a_row_the_sweep_finishes(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    server.slow_delay = 0.5  # 13 pieces: about 6 s, plenty of time to kill it
    task = task_with(f"{server.url}/slow/killed.mp4")
    media = ArchivedMedia.objects.get(task=task)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TOPVIEW_TEST_DATABASE": "postgres",
        "PGDATABASE": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
        "T_TOPVIEW": json.dumps(archive_settings.TOPVIEW_CALLBACKS),
        "T_STORAGES": json.dumps(archive_settings.STORAGES),
        "T_MEDIA": str(media.pk),
    }
    worker = Service("archiver", [sys.executable, "-c", KILLED_WORKER], env).start()
    partial = tmp_path / "media"
    wait_for(lambda: any(p.suffix == ".part" for p in partial.rglob("*")), 30, "a partial file")
    worker.kill(signal.SIGKILL)

    media.refresh_from_db()
    assert media.state == MediaState.PENDING and media.claim and media.partial_name
    assert [p for p in stored_files(tmp_path) if not p.endswith(".part")] == []

    archive_settings.TOPVIEW_CALLBACKS = {**archive_settings.TOPVIEW_CALLBACKS, "SWEEP_AFTER": 1}
    server.slow_delay = 0.0
    time.sleep(1.1)  # the dead worker's claim goes stale: no heartbeat for SWEEP_AFTER
    assert archiving.start_due() == 1

    media.refresh_from_db()
    assert media.state == MediaState.ARCHIVED and media.attempts == 2
    assert stored_files(tmp_path) == ["media/topview/default/COMMON_TASK_TEXT2VIDEO/t1/video-0.mp4"]
    assert media.sha256 == hashlib.sha256(body_for("killed.mp4", ARCHIVED_SIZE)).hexdigest()
