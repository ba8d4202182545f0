"""Errors raised by topview_callbacks. Imports nothing else of the package.

Two trees, on purpose: ``TopviewError`` is what Topview's API (or a notice) did, worth
catching and often retrying; ``TopviewConfigurationError`` is a settings mistake, an
``ImproperlyConfigured`` that ``except TopviewError`` never swallows.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class TopviewError(Exception):
    """Base class of the errors about Topview's API and the notices it sends."""


class TopviewConfigurationError(ImproperlyConfigured):
    """A setting is missing or malformed; the message says what to set.

    Not a ``TopviewError``: retrying cannot fix it, and code that handles Topview's
    transient failures must not hide it.
    """


class NoticeValidationError(TopviewError):
    """An incoming notice is not what the callback contract describes (HTTP 400)."""

    status_code = 400


# Topview business codes worth trying again later (its API documentation lists them).
RETRYABLE_CODES = frozenset({"4007", "5000", "5001", "5003", "5004", "5005"})


class TopviewAPIError(TopviewError):
    """Topview answered, but not with success (``code`` != "200" or a non-2xx status).

    ``code`` is Topview's business code as a string (or the HTTP status when the body
    was not Topview's envelope); ``retryable`` says whether trying again later can help.
    """

    def __init__(self, message: str, *, code: str, http_status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(f"Topview error {code}: {message}")

    @property
    def retryable(self) -> bool:
        if self.code in RETRYABLE_CODES:
            return True
        return self.http_status is not None and (self.http_status >= 500 or self.http_status == 429)

    @property
    def out_of_credit(self) -> bool:
        return self.code == "4100"

    @property
    def content_filtered(self) -> bool:
        return self.code == "6001"


class TopviewConnectionError(TopviewError):
    """Topview could not be reached (DNS, refused connection, timeout); the cause is chained."""

    retryable = True
