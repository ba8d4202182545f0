"""What an archived file may be: per kind, the formats kept, their extension and stored type.

An archived file is served from the project's storage, often on the admin's own origin,
and whatever serves it (nginx, whitenoise, Django's ``static()``, S3) picks the type it
announces from the extension, or from the type stored with the object. Both come from this
table, never from the sender: a URL ending in ``.html``, or a body announced as
``image/svg+xml``, cannot make a page that runs script where the admin is logged in.

The sender's type decides the format when it names one of the kind's (``video/webm`` →
``.webm``); a generic binary type (S3's default) or none leaves it to the URL's extension,
when that is one of the kind's, else to the kind's default. Any other type (``text/html``,
``image/svg+xml``, ``application/xml``, an image for a video) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from topview_callbacks.downloads.fetching import DownloadRefused

#: Per kind: each extension kept and the content type it is stored (and served) with.
FORMATS: dict[str, dict[str, str]] = {
    "video": {".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"},
    "image": {
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".png": "image/png",
        ".webp": "image/webp",
        ".gif": "image/gif",
    },
    "audio": {".mp3": "audio/mpeg", ".wav": "audio/wav", ".m4a": "audio/mp4"},
}
#: The extension of a file whose type and URL say nothing more precise.
DEFAULT_EXTENSIONS = {"video": ".mp4", "image": ".jpg", "audio": ".mp3"}
#: Types senders announce for those formats, besides the ones in ``FORMATS``.
TYPE_ALIASES = {
    "video/x-m4v": ".mp4",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "audio/mp3": ".mp3",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/x-m4a": ".m4a",
    "audio/m4a": ".m4a",
}
#: A type that says only "bytes": the URL's extension (or the default) decides.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True)
class Format:
    """How one file is stored: ``extension`` (".mp4") and ``content_type`` ("video/mp4")."""

    extension: str
    content_type: str


def url_extension(kind: str, url: str) -> str:
    """The extension of ``url``'s path when it is one ``kind`` keeps, else the default."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1].lower()
    suffix = name[name.rfind(".") :] if "." in name else ""
    return suffix if suffix in FORMATS.get(kind, {}) else DEFAULT_EXTENSIONS.get(kind, "")


def stored_format(kind: str, content_type: str, url: str) -> Format:
    """The format a file of ``kind``, announced as ``content_type``, fetched from ``url``,
    is stored as; ``DownloadRefused`` when the type is not one ``kind`` keeps."""
    formats = FORMATS.get(kind)
    if formats is None:
        raise DownloadRefused(f"{kind!r} is not a kind of output that is archived")
    by_type: dict[str, str] = {}
    for extension, stored in formats.items():
        by_type.setdefault(stored, extension)  # image/jpeg: .jpg, the first listed
    by_type |= {alias: ext for alias, ext in TYPE_ALIASES.items() if ext in formats}
    if content_type in by_type:
        extension = by_type[content_type]
    elif content_type in GENERIC_TYPES:
        extension = url_extension(kind, url)
    else:
        kept = ", ".join(sorted(set(formats.values())))
        raise DownloadRefused(
            f"content type {content_type!r} is not one of the {kind} formats archived ({kept})"
        )
    return Format(extension, formats[extension])
