"""Archiving: copying each successful task's output media into the project's storage."""

from __future__ import annotations

from typing import Any

from topview_callbacks.conf.base import SettingsReader

ARCHIVE_KINDS = ("video", "image", "audio")

DEFAULTS: dict[str, Any] = {
    # Archiving (docs/archiving.md): copy each successful task's output media into your own
    # storage, off the request path, before Topview's URLs expire (7 days; presigned S3
    # URLs: 24 h).
    "ARCHIVE_MEDIA": False,
    # The alias in STORAGES the files are written to (S3, GCS... through django-storages).
    "ARCHIVE_STORAGE": "default",
    # Where a file goes in that storage. {account}, {biz_type} and {task_id} (each a folder
    # of its own), {kind} and {index} (in the file's name) are required: together they make
    # the name unique (archive_names). {ext} (".mp4"...) is optional.
    "ARCHIVE_PATH": "topview/{account}/{biz_type}/{task_id}/{kind}-{index}{ext}",
    # Fetch only the URLs Topview's own query returns for the task (one query per task, with
    # the account's API key), never those a notice names: notices are unsigned.
    # (archive_sources; rows from a poll or under VERIFY_WITH_QUERY are Topview's already.)
    "ARCHIVE_CONFIRM_URLS": True,
    # Hosts files are fetched from: exact names, or "*.example.com" for its subdomains.
    # Topview's query results name its S3 bucket (aigc.s3.amazonaws.com; the client asks
    # with needCloudFrontUrl=false). Not "*.cloudfront.net": anyone can create a CloudFront
    # distribution in front of a server of their own (docs/archiving.md).
    "ARCHIVE_HOSTS": ["aigc.s3.amazonaws.com", "*.topview.ai"],
    # A file larger than this many bytes is not stored (state "refused").
    "ARCHIVE_MAX_BYTES": 1024 * 1024 * 1024,
    # Which kinds of output are archived.
    "ARCHIVE_KINDS": list(ARCHIVE_KINDS),
    # At most this many files of one result are archived (the first ones, videos before
    # covers): a forged result may name thousands, each a row, a download and a query.
    "ARCHIVE_MAX_FILES": 50,
    # Seconds to connect, and the longest silence while reading, before a download is retried.
    "ARCHIVE_TIMEOUT": 30.0,
    # Seconds one download may take in all (connect, redirects, headers, body) before it is
    # cut off and retried: a server trickling a byte at a time never trips ARCHIVE_TIMEOUT.
    # 600 s lets a 1 GiB file (ARCHIVE_MAX_BYTES) through at 1.8 MB/s.
    "ARCHIVE_DEADLINE": 600.0,
    # Tests and the demo only: also fetch http:// URLs, and from hosts that resolve to
    # loopback or private addresses. Cloud metadata addresses are refused even then.
    "ARCHIVE_ALLOW_INSECURE": False,
}


class ArchivingSettings(SettingsReader):
    @property
    def archive_media(self) -> bool:
        return bool(self._get("ARCHIVE_MEDIA"))

    @property
    def archive_storage(self) -> str:
        return str(self._get("ARCHIVE_STORAGE"))

    @property
    def archive_path(self) -> str:
        return str(self._get("ARCHIVE_PATH"))

    @property
    def archive_confirm_urls(self) -> bool:
        return bool(self._get("ARCHIVE_CONFIRM_URLS"))

    @property
    def archive_hosts(self) -> list[str]:
        return [str(host).lower() for host in self._get("ARCHIVE_HOSTS") or []]

    @property
    def archive_max_bytes(self) -> int:
        return int(self._get("ARCHIVE_MAX_BYTES"))

    @property
    def archive_max_files(self) -> int:
        return int(self._get("ARCHIVE_MAX_FILES"))

    @property
    def archive_kinds(self) -> list[str]:
        return [str(kind) for kind in self._get("ARCHIVE_KINDS") or []]

    @property
    def archive_timeout(self) -> float:
        return float(self._get("ARCHIVE_TIMEOUT"))

    @property
    def archive_deadline(self) -> float:
        return float(self._get("ARCHIVE_DEADLINE"))

    @property
    def archive_allow_insecure(self) -> bool:
        return bool(self._get("ARCHIVE_ALLOW_INSECURE"))
