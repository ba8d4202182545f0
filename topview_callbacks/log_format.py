"""``JsonFormatter``: one JSON object per log line, with the pipeline's ``extra=`` fields.

The package logs with ``extra=notice.log_context()`` (``topview_notice_uuid``,
``topview_task_id``, ...) and, for refused deliveries, ``topview_rejection_reason`` and
``topview_remote_addr``. A plain formatter drops them; this one keeps every ``topview_*``
attribute as a key, so a log aggregator can index and filter on them. No dependency::

    LOGGING = {
        "version": 1,
        "formatters": {"json": {"()": "topview_callbacks.log_format.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "loggers": {"topview_callbacks": {"handlers": ["console"], "level": "INFO"}},
    }
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any


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
