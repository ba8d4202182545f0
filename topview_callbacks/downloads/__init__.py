"""Fetching one output file from a URL Topview named, safely, straight into a Django storage.

- ``fetching``: the SSRF rules (``check_url``), opening the URL from the checked address,
  redirects followed by hand (``open_url``), and the errors that say why not;
- ``formats``: per kind, the formats kept, and the extension and type each is stored as;
- ``storing``: the body streamed into the storage, hashed, counted and capped on the way
  (``download_to_storage``), with a fast path for a local ``FileSystemStorage``.

``archiving`` calls ``download_to_storage``; the names below are the package's public ones.
"""

from __future__ import annotations

from topview_callbacks.downloads.fetching import (
    GONE_STATUSES,
    MAX_REDIRECTS,
    METADATA_ADDRESSES,
    REDIRECT_STATUSES,
    DownloadError,
    DownloadFailed,
    DownloadGone,
    DownloadRefused,
    address_refusal,
    check_url,
    host_allowed,
    open_url,
    shown,
)
from topview_callbacks.downloads.formats import (
    DEFAULT_EXTENSIONS,
    FORMATS,
    GENERIC_TYPES,
    Format,
    stored_format,
    url_extension,
)
from topview_callbacks.downloads.storing import (
    CHUNK_SIZE,
    HEARTBEAT_EVERY,
    Stored,
    download_to_storage,
)

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_EXTENSIONS",
    "FORMATS",
    "GENERIC_TYPES",
    "GONE_STATUSES",
    "HEARTBEAT_EVERY",
    "MAX_REDIRECTS",
    "METADATA_ADDRESSES",
    "REDIRECT_STATUSES",
    "DownloadError",
    "DownloadFailed",
    "DownloadGone",
    "DownloadRefused",
    "Format",
    "Stored",
    "address_refusal",
    "check_url",
    "download_to_storage",
    "host_allowed",
    "open_url",
    "shown",
    "stored_format",
    "url_extension",
]
