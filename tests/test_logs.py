"""logs: the token filter (the token segment of the notice route, slash or no slash), and
JsonFormatter (the pipeline's extra= fields as JSON keys)."""

from __future__ import annotations

import json
import logging
import logging.config
import sys

import pytest

from tests.support.settings import topview
from topview_callbacks.logs import JsonFormatter, redact
from topview_callbacks.models import Notice


def test_a_record_with_the_notice_context_becomes_one_json_object() -> None:
    notice = Notice(pk=7, uuid="u-1", task_id="t-1", biz_type="VOICE_CLONE", account="default")
    record = logging.LogRecord(
        "topview_callbacks.processing",
        logging.ERROR,
        "f.py",
        1,
        "Receiver failed on %s",
        ("u-1",),
        None,
    )
    for key, value in {**notice.log_context(), "unrelated": "x"}.items():
        setattr(record, key, value)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Receiver failed on u-1"
    assert entry["level"] == "ERROR" and entry["logger"] == "topview_callbacks.processing"
    assert {k: v for k, v in entry.items() if k.startswith("topview_")} == {
        "topview_notice_id": 7,
        "topview_notice_uuid": "u-1",
        "topview_task_id": "t-1",
        "topview_biz_type": "VOICE_CLONE",
        "topview_account": "default",
    }
    assert "unrelated" not in entry and entry["time"].endswith("+00:00")


def test_exceptions_are_kept_and_the_dict_config_recipe_works() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": "topview_callbacks.logs.JsonFormatter"}},
            "handlers": {"h": {"class": "logging.NullHandler", "formatter": "json"}},
        }
    )
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, "f", 1, "m", (), None)

        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exc_info"]


TOKEN = "configured-token-0123456789"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "POST /topview/notice/a-guess-0123456789/ HTTP/1.1",
            "POST /topview/notice/<token>/ HTTP/1.1",
        ),
        (
            "POST /topview/notice/a-guess-0123456789 HTTP/1.1",
            "POST /topview/notice/<token> HTTP/1.1",
        ),
        (
            "https://x.example/topview/notice/a-guess-0123456789",
            "https://x.example/topview/notice/<token>",
        ),
        ("/topview/notice/a-guess-0123456789?x=1", "/topview/notice/<token>?x=1"),
        ('"/topview/notice/a-guess-0123456789"', '"/topview/notice/<token>"'),
        ("POST /topview/notice/ HTTP/1.1", "POST /topview/notice/ HTTP/1.1"),
        ("POST /topview/notice HTTP/1.1", "POST /topview/notice HTTP/1.1"),
        (f"token {TOKEN} anywhere", "token <token> anywhere"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    with topview(NOTICE_TOKENS=[TOKEN]):
        assert redact(line) == expected
