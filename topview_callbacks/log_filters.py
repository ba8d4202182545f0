"""Keeping the secret path tokens (``NOTICE_TOKENS``) out of log lines.

The endpoint logs its own rejections with the token redacted and tells Django's request
logger not to log them again. Access logs of servers the app does not control (``runserver``
logs every request line to ``django.server``, gunicorn to ``gunicorn.access``) need the
filter below::

    LOGGING = {
        ...,
        "filters": {"topview_tokens": {"()": "topview_callbacks.log_filters.RedactNoticeTokens"}},
        "handlers": {"console": {..., "filters": ["topview_tokens"]}},
    }
"""

from __future__ import annotations

import logging
import re

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
