"""Hardening, second round (issue 24): archived files. Each finding of the December 2026
review, replayed through the public functions against a real HTTP server on 127.0.0.1.

The names say which finding they close: ``test_round2_f1_`` ... docs/security.md cites them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ARCHIVED_SIZE
from tests.media_server import MediaServer
from tests.test_archiving import archive
from topview_callbacks import archiving
from topview_callbacks.downloads import address_refusal
from topview_callbacks.models import MediaState, SubmittedTask

pytestmark = pytest.mark.django_db

RESULT_PATHS = {
    "video": ("COMMON_TASK_TEXT2VIDEO", "videos"),
    "image": ("COMMON_TASK_TEXT2IMAGE", "images"),
}


def task_of(kind: str, *urls: str, task_id: str = "t1", account: str = "default") -> SubmittedTask:
    biz_type, key = RESULT_PATHS[kind]
    task = SubmittedTask.objects.create(
        account=account,
        biz_type=biz_type,
        task_id=task_id,
        status="success",
        result={"status": "success", key: [{"filePath": url} for url in urls]},
    )
    archiving.create_rows(task)
    return task


# --- 12. hostile URLs and headers are refused once, not retried as storage errors ---------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:99999/ok/a.mp4", "not a valid URL"),
        ("http://[::1/ok/a.mp4", "not a valid URL"),
        ("{url}/redirect/a.mp4?to=http://[::1", "a redirect to an invalid URL"),
    ],
)
def test_round2_f12_an_invalid_url_or_port_is_refused_at_once(
    url: str, words: str, server: MediaServer, archive_settings: Any, caplog: Any
) -> None:
    [media] = archive(task_of("video", url.format(url=server.url)))

    assert media.state == MediaState.REFUSED
    assert words in media.last_error
    assert media.attempts == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged


def test_round2_f12_an_unreadable_content_length_is_no_length(
    server: MediaServer, archive_settings: Any, caplog: Any
) -> None:
    [media] = archive(task_of("video", f"{server.url}/badlength/a.mp4"))

    assert media.state == MediaState.ARCHIVED
    assert media.size == ARCHIVED_SIZE
    assert not [r for r in caplog.records if r.exc_info]


# --- 13. 6to4 and Teredo addresses carrying private or metadata IPv4 -----------------------


@pytest.mark.parametrize(
    ("address", "allow_private", "words"),
    [
        ("2002:7f00:1::", False, "embeds 127.0.0.1"),  # 6to4 of loopback
        ("2002:a9fe:a9fe::", True, "embeds 169.254.169.254"),  # metadata, even when allowed
        ("2002:c0a8:1::1", False, "embeds 192.168.0.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, "embeds 192.0.2.45"),  # Teredo
    ],
)
def test_round2_f13_6to4_and_teredo_addresses_are_judged_by_what_they_carry(
    address: str, allow_private: bool, words: str
) -> None:
    refusal = address_refusal(address, allow_private=allow_private)

    assert refusal is not None and words in refusal
    assert address_refusal("2002:808:808::1", allow_private=False) is None  # 8.8.8.8
