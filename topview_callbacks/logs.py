"""Helpers for the host's ``LOGGING``: keep the secret path tokens out of log lines, and
format the pipeline's ``extra=`` fields as JSON.

The endpoint logs its own rejections with the token redacted and tells Django's request
logger not to log them again. Access logs of servers the app does not control
(``runserver`` logs every request line to ``django.server``, gunicorn to
``gunicorn.access``) need ``RedactNoticeTokens``. The package logs with
``extra=notice.log_context()`` (``topview_notice_uuid``, ``topview_task_id``, ...) and, for
refused deliveries, ``topview_rejection_reason`` and ``topview_remote_addr``; a plain
formatter drops them, ``JsonFormatter`` keeps every ``topview_*`` attribute as a key::

    LOGGING = {
        "version": 1,
        "filters": {"topview_tokens": {"()": "topview_callbacks.logs.RedactNoticeTokens"}},
        "formatters": {"json": {"()": "topview_callbacks.logs.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["topview_tokens"],
            }
        },
        "loggers": {"topview_callbacks": {"handlers": ["console"], "level": "INFO"}},
    }
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

from topview_callbacks.conf import topview_settings

REDACTED = "<token>"
# The endpoint's token route (urls.py: notice/<token>/), whatever prefix it is mounted at:
# also catches tokens rotated out of the settings and guesses by strangers, with or
# without the trailing slash (both routes answer).
_TOKEN_IN_PATH = re.compile(r"(/notice/)[^/\s?#\"']+(?=[/\s?#\"']|$)")


def redact(text: str) -> str:
    """``text`` with every configured path token, and the token segment of the notice
    route, replaced by ``<token>``."""
    for token in topview_settings.all_notice_tokens:
        if token:
            text = text.replace(token, REDACTED)
    return _TOKEN_IN_PATH.sub(rf"\1{REDACTED}", text)


class RedactNoticeTokens(logging.Filter):
    """A logging filter that redacts notice path tokens from every record it sees.

    The record's message is formatted, redacted, and stored back without arguments, so
    any formatter prints the redacted text. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report, not ours
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"time", "level", "logger", "message", "topview_*"..., "exc_info"}``.

    ``prefixes``: which ``extra=`` attributes to keep (default: the package's ``topview_``).
    """

    def __init__(self, *args: Any, prefixes: tuple[str, ...] = ("topview_",), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.prefixes = prefixes

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key.startswith(self.prefixes):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
