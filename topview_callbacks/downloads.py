"""Fetching one output file from a URL Topview named, safely, straight into a Django storage.

The URL comes from a notice, and notices are unsigned: anyone who can reach the endpoint
can name any URL. So nothing is fetched unless it passes ``check_url`` (https only, a host
in ``ARCHIVE_HOSTS``, every address the name resolves to public), the connection goes to
the address that was checked (no second DNS answer can point it elsewhere), redirects are
followed by hand and checked the same way, and every socket operation has a timeout. The
body is streamed in chunks, hashed and counted on the way, and stopped at the size cap.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import certifi
import urllib3
from django.core.files.storage import Storage

from topview_callbacks import __version__
from topview_callbacks.conf import topview_settings

CHUNK_SIZE = 1024 * 1024
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What an expired presigned URL (S3: 403 "Request has expired") or a removed file answers.
GONE_STATUSES = frozenset({403, 404, 410})
# Never a media host, whatever ARCHIVE_ALLOW_PRIVATE says: cloud metadata services.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
# Content types accepted per kind; a generic binary type (S3's default) is accepted too.
KIND_TYPES = {"video": "video/", "image": "image/", "audio": "audio/"}
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
HEARTBEAT_EVERY = 10.0  # seconds between two ``heartbeat`` calls while a body streams


class DownloadError(Exception):
    """A file could not be archived; ``retryable`` says whether trying later may help."""

    retryable = False


class DownloadRefused(DownloadError):
    """The URL or the answer breaks a rule (host, address, scheme, size, type): not fetched
    or not kept, and not retried."""


class DownloadGone(DownloadError):
    """The server says the file is not there for us (403/404/410): an expired URL."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server answered HTTP {status}")
        self.status = status


class DownloadFailed(DownloadError):
    """A network error, a timeout or a 5xx/429 answer (retryable), or another HTTP error."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Stored:
    """What ``download_to_storage`` wrote."""

    name: str
    size: int
    sha256: str
    content_type: str


def host_allowed(host: str, patterns: list[str]) -> bool:
    """``host`` is one of ``patterns``, or a subdomain of a ``*.domain`` pattern."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """Why ``address`` may not be fetched from, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return f"{ip} is a link-local or cloud metadata address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a unicast address"
    if not ip.is_global and not allow_private:
        return f"{ip} is a loopback or private address"
    return None


def check_url(url: str) -> tuple[SplitResult, str]:
    """The URL's parts and the checked address to connect to; ``DownloadRefused`` if any
    rule forbids it. Resolves the host: every address it has must be allowed."""
    parts = urlsplit(url)
    allowed_schemes = ("https", "http") if topview_settings.archive_allow_http else ("https",)
    if parts.scheme not in allowed_schemes:
        raise DownloadRefused(f"only {' and '.join(allowed_schemes)} URLs are fetched: {url}")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise DownloadRefused(f"not a plain URL with a host: {url}")
    if not host_allowed(parts.hostname, topview_settings.archive_hosts):
        raise DownloadRefused(f"host {parts.hostname} is not in ARCHIVE_HOSTS")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DownloadFailed(f"cannot resolve {parts.hostname}: {exc}", retryable=True) from exc
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        refusal = address_refusal(address, allow_private=topview_settings.archive_allow_private)
        if refusal is not None:
            raise DownloadRefused(f"{parts.hostname} resolves to {refusal}")
    return parts, addresses[0]


def _request(parts: SplitResult, address: str) -> urllib3.BaseHTTPResponse:
    """GET the URL from the checked ``address``; TLS still verifies the certificate against
    the URL's host name (SNI and hostname check), so pinning the address weakens nothing."""
    timeout = urllib3.Timeout(
        connect=topview_settings.archive_timeout, read=topview_settings.archive_timeout
    )
    host = str(parts.hostname)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            assert_hostname=host,
            server_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc,
        "User-Agent": f"topview-callbacks/{__version__}",
        "Accept-Encoding": "identity",
    }
    try:
        return pool.urlopen(
            "GET",
            path,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=False,
            assert_same_host=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise DownloadFailed(f"{host}: {exc}", retryable=True) from exc


def open_url(url: str) -> urllib3.BaseHTTPResponse:
    """The answer to GET ``url`` with a 200, after at most ``MAX_REDIRECTS`` checked
    redirects; raises the ``DownloadError`` that says why not."""
    for _ in range(MAX_REDIRECTS + 1):
        parts, address = check_url(url)
        response = _request(parts, address)
        status = response.status
        if status == 200:
            return response
        location = response.headers.get("Location")
        response.drain_conn()
        response.release_conn()
        if status in REDIRECT_STATUSES and location:
            url = urljoin(url, location)
            continue
        if status in GONE_STATUSES:
            raise DownloadGone(status)
        retryable = status == 429 or status >= 500
        raise DownloadFailed(f"the server answered HTTP {status}", retryable=retryable)
    raise DownloadRefused(f"more than {MAX_REDIRECTS} redirects")


class _Body:
    """The response body as a file the storage reads: hashed, counted and capped on the way.

    Not seekable, so a storage streams it (S3: a multipart upload) rather than rewinding.
    The hash runs on a helper thread (hashlib lets go of the GIL on big chunks), so it
    overlaps with reading the next chunk and writing this one: on a 500 MB file, hashing
    inline cost about as much time as the download itself. At most ``HASH_AHEAD`` chunks
    wait for it, which bounds the memory.
    """

    HASH_AHEAD = 2

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        max_bytes: int,
        content_type: str,
        heartbeat: Callable[[], object] | None,
    ) -> None:
        self.response = response
        self.max_bytes = max_bytes
        self.content_type = content_type or None  # S3Storage reads this attribute
        self.heartbeat = heartbeat
        self.digest = hashlib.sha256()
        self.size = 0
        self.last_beat = time.monotonic()
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="topview-sha256")
        self._hashing: deque[Future[None]] = deque()

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.response.read(size if size > 0 else CHUNK_SIZE, decode_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DownloadFailed(f"the download broke off: {exc}", retryable=True) from exc
        self.size += len(data)
        if self.size > self.max_bytes:
            raise DownloadRefused(f"larger than ARCHIVE_MAX_BYTES ({self.max_bytes} bytes)")
        self._hashing.append(self._hasher.submit(self.digest.update, data))
        if len(self._hashing) > self.HASH_AHEAD:
            self._hashing.popleft().result()
        if self.heartbeat is not None and time.monotonic() - self.last_beat > HEARTBEAT_EVERY:
            self.heartbeat()
            self.last_beat = time.monotonic()
        return data

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


def check_type(kind: str, content_type: str) -> None:
    """``DownloadRefused`` when the answer's type is not one of ``kind`` (or generic)."""
    if content_type in GENERIC_TYPES or content_type.startswith(KIND_TYPES.get(kind, "?")):
        return
    raise DownloadRefused(f"content type {content_type!r} is not a {kind}")


def download_to_storage(
    url: str,
    storage: Storage,
    name: str,
    *,
    kind: str,
    heartbeat: Callable[[], object] | None = None,
) -> Stored:
    """Stream ``url`` into ``storage`` under ``name``; on any error nothing stays there."""
    response = open_url(url)
    try:
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        check_type(kind, content_type)
        max_bytes = topview_settings.archive_max_bytes
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise DownloadRefused(f"larger than ARCHIVE_MAX_BYTES ({length} > {max_bytes} bytes)")
        body = _Body(response, max_bytes, content_type, heartbeat)
        saved = None
        try:
            # A body shorter than its Content-Length raises in read() (urllib3 checks).
            saved = storage.save(name, body)  # type: ignore[arg-type]
        except BaseException:
            body.hexdigest()  # stop the hashing thread
            # A storage may leave what it wrote so far (FileSystemStorage does).
            if storage.exists(saved or name):
                storage.delete(saved or name)
            raise
        return Stored(saved, body.size, body.hexdigest(), content_type)
    finally:
        response.release_conn()
