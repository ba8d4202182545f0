"""RedactNoticeTokens: the token segment of the notice route, slash or no slash."""

from __future__ import annotations

import pytest
from django.test import override_settings

from topview_callbacks.log_filters import redact

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
    with override_settings(TOPVIEW_CALLBACKS={"UID": "u", "NOTICE_TOKENS": [TOKEN]}):
        assert redact(line) == expected
