"""Opening one output file's URL, safely: the SSRF rules and the redirects.

The URL comes from a notice, and notices are unsigned: anyone who can reach the endpoint
can name any URL. So nothing is fetched unless it passes ``check_url`` (https only, a host
in ``ARCHIVE_HOSTS``, every address the name resolves to public), the connection goes to
the address that was checked (no second DNS answer can point it elsewhere), redirects are
followed by hand and checked the same way, and every socket operation has a timeout.
``downloads.storing`` reads the answer's body into the storage.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urljoin, urlsplit

import certifi
import urllib3

from topview_callbacks import __version__
from topview_callbacks.conf import topview_settings
from topview_callbacks.downloads.deadline import Deadline, watch_pool

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What an expired presigned URL (S3: 403 "Request has expired") or a removed file answers.
GONE_STATUSES = frozenset({403, 404, 410})
# Never a media host, whatever ARCHIVE_ALLOW_INSECURE says: cloud metadata services.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


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


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (6to4's and both of Teredo's): a packet to
    it is routed to them, so they decide, not what Python's version thinks of the IPv6 range
    (3.12 and earlier count ``2002::/16`` as global, 3.13 on as private)."""
    found = [ip.sixtofour] if ip.sixtofour is not None else []
    return found + list(ip.teredo or ())


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """Why ``address`` may not be fetched from, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif carried := _embedded(ip):
            for inner in carried:
                refusal = address_refusal(str(inner), allow_private=allow_private)
                if refusal is not None:
                    return f"{ip} embeds {inner}: {refusal}"
            return None
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return f"{ip} is a link-local or cloud metadata address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a unicast address"
    if not ip.is_global and not allow_private:
        return f"{ip} is a loopback or private address"
    return None


def _split(url: str) -> SplitResult:
    # A hostile URL ("http://[::1", a port of 99999) raises ValueError here or in ``.port``:
    # a rule it breaks, refused once, not a storage error retried MAX_ATTEMPTS times.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsed lazily: this is where a bad port raises)
    except ValueError as exc:
        raise DownloadRefused(f"not a valid URL ({exc}): {shown(url)}") from exc
    return parts


def shown(url: str) -> str:
    """``url`` for a message or a log line: without its query, which may hold a presigned
    URL's signature."""
    return url.split("?", 1)[0]


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def check_url(url: str) -> tuple[SplitResult, str]:
    """The URL's parts and the checked address to connect to; ``DownloadRefused`` if any
    rule forbids it. Resolves the host: every address it has must be allowed."""
    parts = _split(url)
    allowed_schemes = ("https", "http") if topview_settings.archive_allow_insecure else ("https",)
    if parts.scheme not in allowed_schemes:
        raise DownloadRefused(
            f"only {' and '.join(allowed_schemes)} URLs are fetched: {shown(url)}"
        )
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise DownloadRefused(f"not a plain URL with a host: {shown(url)}")
    if not host_allowed(parts.hostname, topview_settings.archive_hosts):
        raise DownloadRefused(f"host {parts.hostname} is not in ARCHIVE_HOSTS")
    port = _port(parts)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DownloadFailed(f"cannot resolve {parts.hostname}: {exc}", retryable=True) from exc
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        refusal = address_refusal(address, allow_private=topview_settings.archive_allow_insecure)
        if refusal is not None:
            raise DownloadRefused(f"{parts.hostname} resolves to {refusal}")
    return parts, addresses[0]


def _request(
    parts: SplitResult, address: str, deadline: Deadline | None
) -> urllib3.BaseHTTPResponse:
    """GET the URL from the checked ``address``; TLS still verifies the certificate against
    the URL's host name (SNI and hostname check), so pinning the address weakens nothing.
    ``deadline`` shuts the connection down when it passes."""
    timeout = urllib3.Timeout(
        connect=topview_settings.archive_timeout, read=topview_settings.archive_timeout
    )
    host = str(parts.hostname)
    port = _port(parts)
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
            deadline=deadline,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            address, port, timeout=timeout, retries=False, maxsize=1, deadline=deadline
        )
    watch_pool(pool)
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


def open_url(url: str, deadline: Deadline | None = None) -> urllib3.BaseHTTPResponse:
    """The answer to GET ``url`` with a 200, after at most ``MAX_REDIRECTS`` checked
    redirects; raises the ``DownloadError`` that says why not. ``deadline`` covers every
    connection opened on the way."""
    for _ in range(MAX_REDIRECTS + 1):
        parts, address = check_url(url)
        response = _request(parts, address, deadline)
        status = response.status
        if status == 200:
            return response
        location = response.headers.get("Location")
        response.drain_conn()
        response.release_conn()
        if status in REDIRECT_STATUSES and location:
            try:
                url = urljoin(url, location)
            except ValueError as exc:
                raise DownloadRefused(f"a redirect to an invalid URL ({exc})") from exc
            continue
        if status in GONE_STATUSES:
            raise DownloadGone(status)
        retryable = status == 429 or status >= 500
        raise DownloadFailed(f"the server answered HTTP {status}", retryable=retryable)
    raise DownloadRefused(f"more than {MAX_REDIRECTS} redirects")
