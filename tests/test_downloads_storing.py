"""``downloads.storing``: the local-disk path and the generic storage path give the same file.

The archiving tests (``test_archiving.py``) run the default storage, a ``FileSystemStorage``
behind Django's lazy ``storages`` proxy, so they take the disk path; here a storage with its
own ``_save`` takes the generic one (``storage.save``), as S3 does in
``test_archiving_services.py``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage, InMemoryStorage, storages

from tests.support.archive import ARCHIVED_SIZE, archive, stored_files, task_with
from tests.support.media_server import MediaServer, body_for
from topview_callbacks.downloads import storing
from topview_callbacks.models import MediaState, archive_storage

pytestmark = pytest.mark.django_db


class SavingStorage(FileSystemStorage):
    """A local storage with its own ``_save`` (as an encrypting one might): generic path."""

    saved: list[str] = []

    def _save(self, name: str, content: Any) -> str:
        SavingStorage.saved.append(name)
        return super()._save(name, content)


@pytest.fixture(params=["disk", "generic"])
def storage_path(request: Any, archive_settings: Any, tmp_path: Path) -> str:
    """Each test twice: the default FileSystemStorage, then ``SavingStorage``."""
    if request.param == "generic":
        archive_settings.STORAGES = {
            **archive_settings.STORAGES,
            "default": {
                "BACKEND": "tests.test_downloads_storing.SavingStorage",
                "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
            },
        }
    SavingStorage.saved = []
    return str(request.param)


def test_which_storages_take_the_disk_path(archive_settings: Any) -> None:
    assert storing.direct_to_disk(archive_storage())  # through the lazy proxy
    assert storing.direct_to_disk(storages["default"])
    assert not storing.direct_to_disk(SavingStorage())
    assert not storing.direct_to_disk(InMemoryStorage())


def test_both_paths_store_the_same_bytes_hash_and_size(
    server: MediaServer, storage_path: str, tmp_path: Path
) -> None:
    task = task_with(f"{server.url}/ok/a.mp4", f"{server.url}/chunked/b.mp4")

    media = archive(task)

    for item, name in zip(media, ("a.mp4", "b.mp4"), strict=True):
        body = body_for(name, ARCHIVED_SIZE)
        assert item.state == MediaState.ARCHIVED
        assert item.file.read() == body
        assert (item.size, item.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    # The generic path went through the storage's own _save, once per file (partial names).
    assert len(SavingStorage.saved) == (2 if storage_path == "generic" else 0)
    assert all(name.endswith(".part") for name in SavingStorage.saved)
    assert len(stored_files(tmp_path)) == 2


def test_a_body_shorter_than_its_length_is_retried_and_leaves_nothing(
    server: MediaServer, storage_path: str, tmp_path: Path
) -> None:
    task = task_with(f"{server.url}/short/a.mp4")

    [media] = archive(task)

    assert media.state == MediaState.PENDING and media.attempts == 1
    assert "broke off" in media.last_error
    assert stored_files(tmp_path) == []


def test_a_file_over_the_cap_without_length_stops_on_both_paths(
    server: MediaServer, storage_path: str, archive_settings: Any, tmp_path: Path
) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_MAX_BYTES": ARCHIVED_SIZE // 2,
    }
    [media] = archive(task_with(f"{server.url}/chunked/a.mp4"))
    assert media.state == MediaState.REFUSED and "ARCHIVE_MAX_BYTES" in media.last_error
    assert stored_files(tmp_path) == []


def test_the_disk_path_applies_the_storages_file_and_folder_modes(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    archive_settings.FILE_UPLOAD_PERMISSIONS = 0o640
    archive_settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
    [media] = archive(task_with(f"{server.url}/ok/a.mp4"))
    path = Path(media.file.path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o750
