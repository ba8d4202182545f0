"""Errors raised by topview_callbacks. Imports nothing else of the package."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class TopviewError(Exception):
    """Base class of every error this package raises."""


class TopviewConfigurationError(TopviewError, ImproperlyConfigured):
    """A setting is missing or malformed; the message says what to set."""


class NoticeValidationError(TopviewError):
    """An incoming notice is not what the callback contract describes (HTTP 400)."""

    status_code = 400


# Topview business codes (topview-api.md §3) that are worth trying again later.
RETRYABLE_CODES = frozenset({"4007", "5000", "5001", "5003", "5004", "5005"})
CODE_MEANINGS = {
    "401": "unauthorized: check UID and API_KEY",
    "4000": "request parameter error",
    "4001": "request data format does not match",
    "4002": "request digital signature does not match",
    "4003": "required parameter cannot be null",
    "4004": "resource not found",
    "4005": "name duplicated",
    "4006": "request refused",
    "4007": "an unfinished task exists, wait and retry",
    "4100": "credit not enough",
    "5000": "Topview internal server error",
    "5001": "Topview feign invoke error",
    "5003": "Topview server busy, try later",
    "5004": "Topview I/O error",
    "5005": "Topview unknown error",
    "6001": "security problem detected (content filter)",
}


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
