"""Reading an opened answer's body into a Django storage: streamed, hashed, counted, capped.

The body is never whole in memory: it goes through in ``CHUNK_SIZE`` pieces, its sha256
and size computed on the way, and it stops past ``ARCHIVE_MAX_BYTES``. Two ways, one
result (``Stored``):

- a ``FileSystemStorage`` (the default storage) whose ``_save`` is Django's own: the body
  is read from the socket into one reused ``DISK_CHUNK_SIZE`` buffer (``readinto``),
  hashed right there and written to the file with ``os.write`` while it is still in the
  CPU's cache: no bytes object per chunk, no copy loop, no thread;
- any other storage (S3, GCS, a custom ``_save``): ``storage.save(name, body)`` with the
  body as a non-seekable file whose ``read`` returns fresh ``CHUNK_SIZE`` bytes, since the
  storage may keep them (boto3 uploads parts from several threads); the hash runs on a
  helper thread (hashlib lets go of the GIL on big chunks), overlapping the next read,
  with at most ``HASH_AHEAD`` chunks waiting for it.

Why two paths: on a 500 MB file the disk path uses half the CPU of the generic one (a
fresh 1 MiB ``bytes`` per read, Django's copy loop, and each chunk touched three times
after it left the cache), about as much as ``curl -o`` does, and on a busy machine CPU is
the time. Hashing inline beat a thread fed from a ring of reused buffers (handing over
each chunk costs more than it overlaps when no core is idle): docs/archiving.md,
"Measured", has the figures.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeGuard

import urllib3
from django.core.files.storage import FileSystemStorage, Storage

from topview_callbacks.conf import topview_settings
from topview_callbacks.downloads.deadline import Deadline
from topview_callbacks.downloads.fetching import DownloadFailed, DownloadRefused, open_url
from topview_callbacks.downloads.formats import stored_format

CHUNK_SIZE = 1024 * 1024
# The disk path's buffer: small enough to stay in a core's L2 cache from the socket read
# through the hash to the write. Measured on a 500 MB file, CPU per file: 1 MiB 1.42 s,
# 256 KiB 0.98 s, 128 KiB 0.85-0.87 s, 64 KiB 0.91 s, 32 KiB 1.03 s (curl -o: 0.79 s).
DISK_CHUNK_SIZE = 128 * 1024
HASH_AHEAD = 2
HEARTBEAT_EVERY = 10.0  # seconds between two ``heartbeat`` calls while a body streams
READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


@dataclass(frozen=True)
class Stored:
    """What ``download_to_storage`` wrote."""

    name: str
    size: int
    sha256: str
    #: From ``formats.FORMATS``, never the sender's: what the file is stored and served as.
    content_type: str
    extension: str


class _Body:
    """The response body, read once: hashed, counted and capped on the way.

    As a file for any storage (``read``, ``chunks``): not seekable, so a storage streams it
    (S3: a multipart upload) rather than rewinding. ``readinto`` fills a caller's buffer
    straight from the socket (the local-disk path).
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        max_bytes: int,
        content_type: str,
        heartbeat: Callable[[], object] | None,
        deadline: Deadline | None = None,
    ) -> None:
        self.response = response
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.content_type = content_type or None  # S3Storage reads this attribute
        self.heartbeat = heartbeat
        self.digest = hashlib.sha256()
        self.size = 0
        self.last_beat = time.monotonic()
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="topview-sha256")
        self._hashing: deque[Future[None]] = deque()
        length = response.headers.get("Content-Length") or ""
        # isdigit() alone accepts "²", which int() refuses; an unreadable length is no length.
        self.length = int(length) if length.isascii() and length.isdigit() else None
        # urllib3's own file object (http.client's response) has the ``readinto`` that
        # reads into our buffer; urllib3's ``readinto`` reads a new bytes object and copies.
        raw = getattr(response, "_fp", None)
        self.raw = raw if isinstance(raw, http.client.HTTPResponse) else None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.response.read(size if size > 0 else CHUNK_SIZE, decode_content=False)
        except READ_ERRORS as exc:
            raise DownloadFailed(f"the download broke off: {exc}", retryable=True) from exc
        self._passed(data)
        return data

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` from the socket and hash it here, so the caller may reuse it."""
        assert self.raw is not None
        try:
            got = self.raw.readinto(view)
        except READ_ERRORS as exc:
            raise DownloadFailed(f"the download broke off: {exc}", retryable=True) from exc
        self._passed(view[:got], inline=True)
        return got

    def _passed(self, data: bytes | memoryview, *, inline: bool = False) -> None:
        if self.deadline is not None and self.deadline.expired:  # and no more heartbeats
            raise DownloadFailed(self.deadline.message, retryable=True)
        if not data:
            # http.client's readinto ends quietly on a short body; urllib3's read raises.
            if self.length is not None and self.size != self.length:
                message = f"the download broke off at {self.size} of {self.length} bytes"
                raise DownloadFailed(message, retryable=True)
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            raise DownloadRefused(f"larger than ARCHIVE_MAX_BYTES ({self.max_bytes} bytes)")
        if inline:
            self.digest.update(data)
        else:
            self._hashing.append(self._hasher.submit(self.digest.update, data))
            if len(self._hashing) > HASH_AHEAD:
                self._hashing.popleft().result()
        if self.heartbeat is not None and time.monotonic() - self.last_beat > HEARTBEAT_EVERY:
            self.heartbeat()
            self.last_beat = time.monotonic()

    def hexdigest(self) -> str:
        """The sha256 of everything read; waits for the hashing thread and stops it."""
        self._hasher.shutdown(wait=True)
        return self.digest.hexdigest()

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        while data := self.read(chunk_size or CHUNK_SIZE):
            yield data

    closed = False  # the file API boto3's uploader checks

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *args: Any) -> int:
        raise io.UnsupportedOperation("a download cannot be rewound")

    def close(self) -> None:
        self.response.release_conn()


def direct_to_disk(storage: Storage) -> TypeGuard[FileSystemStorage]:
    """Whether ``storage`` is a ``FileSystemStorage`` that saves the way Django's does, so
    writing its file ourselves skips nothing it would do."""
    # ``__class__``, not ``type()``: ``storages[...]`` may hand out a lazy proxy.
    cls = storage.__class__
    return (
        issubclass(cls, FileSystemStorage)
        # (``_save`` is private Django API, absent from the type stubs.)
        and getattr(cls, "_save", None) is getattr(FileSystemStorage, "_save", 1)
        and cls.save is Storage.save
    )


def _save_to_disk(storage: FileSystemStorage, name: str, body: _Body) -> str:
    """``storage.save(name, body)`` through one reused buffer: what Django's
    ``FileSystemStorage._save`` does (folders and file modes as configured, never
    overwriting), without a bytes object per chunk."""
    path = storage.path(name)  # refuses a name outside the storage's folder
    directory = os.path.dirname(path)
    if storage.directory_permissions_mode is not None:
        old_umask = os.umask(0o777 & ~storage.directory_permissions_mode)
        try:
            os.makedirs(directory, storage.directory_permissions_mode, exist_ok=True)
        finally:
            os.umask(old_umask)
    else:
        os.makedirs(directory, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, 0o666)
    try:
        buffer = memoryview(bytearray(DISK_CHUNK_SIZE))
        while got := body.readinto(buffer):
            chunk = buffer[:got]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
    finally:
        os.close(fd)
    if storage.file_permissions_mode is not None:
        os.chmod(path, storage.file_permissions_mode)
    return name


def download_to_storage(
    url: str,
    storage: Storage,
    name: str,
    *,
    kind: str,
    heartbeat: Callable[[], object] | None = None,
) -> Stored:
    """Stream ``url`` into ``storage`` under ``name``, within ``ARCHIVE_DEADLINE``; on any
    error nothing stays there."""
    with Deadline(topview_settings.archive_deadline) as deadline:
        try:
            return _download(url, storage, name, kind, heartbeat, deadline)
        except Exception as exc:
            if deadline.expired:  # whatever the cut-off socket made fail, this is why
                raise DownloadFailed(deadline.message, retryable=True) from exc
            raise


def _download(
    url: str,
    storage: Storage,
    name: str,
    kind: str,
    heartbeat: Callable[[], object] | None,
    deadline: Deadline,
) -> Stored:
    response = open_url(url, deadline)
    try:
        announced = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        stored = stored_format(kind, announced, url)
        max_bytes = topview_settings.archive_max_bytes
        body = _Body(response, max_bytes, stored.content_type, heartbeat, deadline)
        if body.length is not None and body.length > max_bytes:
            raise DownloadRefused(
                f"larger than ARCHIVE_MAX_BYTES ({body.length} > {max_bytes} bytes)"
            )
        saved = None
        try:
            if body.raw is not None and direct_to_disk(storage):
                saved = _save_to_disk(storage, name, body)
            else:
                saved = storage.save(name, body)  # type: ignore[arg-type]
            if deadline.expired:  # a body without a length ends where the socket was cut
                raise DownloadFailed(deadline.message, retryable=True)
        except BaseException:
            body.hexdigest()  # stop the hashing thread
            # A storage may leave what it wrote so far (FileSystemStorage does).
            if storage.exists(saved or name):
                storage.delete(saved or name)
            raise
        return Stored(saved, body.size, body.hexdigest(), stored.content_type, stored.extension)
    finally:
        response.release_conn()
