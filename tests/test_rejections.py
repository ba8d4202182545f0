"""Refused deliveries: one WARNING without secrets, one counted row per minute, a signal."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.support.settings import UID, topview
from topview_callbacks import signals
from topview_callbacks.models import Notice, RejectedDelivery
from topview_callbacks.pruning import prune
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "path-token-0123456789abcdef"
LOGGER = "topview_callbacks.rejections"


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def counts() -> dict[tuple[str, int, str], int]:
    return {
        (row.reason, row.status, row.remote_addr): row.count
        for row in RejectedDelivery.objects.all()
    }


def test_a_wrong_uid_is_logged_counted_and_signalled(
    caplog: pytest.LogCaptureFixture, record_signal: Any
) -> None:
    received = record_signal(signals.notice_rejected)
    payload = notice_payload("VOICE_CLONE", uuid="uuid-lost-1")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            response = deliver_notice(payload, uid="a-uid-we-never-configured")
            assert response.status_code == 403
    assert counts() == {("wrong_uid", 403, "127.0.0.1"): 3}  # one row, counted three times
    # A refused body is never read (a slow one would hold the worker): no uuid.
    assert RejectedDelivery.objects.get().last_uuid == ""
    [record, *_] = warnings(caplog)
    assert len(warnings(caplog)) == 3  # once per delivery
    text = record.getMessage()
    assert "wrong_uid (403) from 127.0.0.1" in text and "uuid unreadable" in text
    assert "a-uid-we-never-configured" not in text
    assert record.topview_rejection_reason == "wrong_uid"  # type: ignore[attr-defined]
    assert [call["reason"] for call in received.calls] == ["wrong_uid"] * 3
    assert received.calls[0] | {"sender": None} == {
        "sender": None,
        "signal": signals.notice_rejected,
        "reason": "wrong_uid",
        "status": 403,
        "remote_addr": "127.0.0.1",
        "account": None,
        "uuid": None,
    }
    assert not Notice.objects.exists()


@topview(NOTICE_TOKENS=[TOKEN])
def test_the_path_token_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-token-SECRETSECRET"
    with caplog.at_level(logging.DEBUG):
        deliver_notice(notice_payload("VOICE_CLONE"), path=f"/topview/notice/{wrong}/")
        deliver_notice(notice_payload("VOICE_CLONE"), path="/topview/notice/")  # no token
        ok = deliver_notice(notice_payload("VOICE_CLONE"), path=f"/topview/notice/{TOKEN}/")
    assert ok.status_code == 200
    # This site's UID with a wrong or no token: a misconfiguration, counted in one row.
    assert counts() == {("wrong_token_known_uid", 403, "127.0.0.1"): 2}
    ours = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in warnings(caplog))
    assert TOKEN not in ours and wrong not in ours and UID not in ours


@pytest.mark.parametrize(
    ("body", "reason", "status", "words"),
    [
        ('{"uuid": "u-400", "taskId": 5}', "invalid", 400, "uuid 'u-400': 'status' is required"),
        ("not json", "invalid", 400, "uuid unreadable"),
        ("x" * (3 * 1024 * 1024), "too_large", 413, "larger than"),
    ],
)
def test_every_refusal_has_its_reason(
    caplog: pytest.LogCaptureFixture, body: str, reason: str, status: int, words: str
) -> None:
    with caplog.at_level(logging.WARNING):
        response = deliver_notice(body)
    assert response.status_code == status
    assert counts() == {(reason, status, "127.0.0.1"): 1}
    [record] = warnings(caplog)
    assert words in record.getMessage() and "account default" in record.getMessage()


def test_method_not_allowed_and_accepted_notices(caplog: pytest.LogCaptureFixture) -> None:
    assert Client().put("/topview/notice/").status_code == 405
    assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
    assert counts() == {("method_not_allowed", 405, "127.0.0.1"): 1}


def test_old_counts_are_pruned() -> None:
    deliver_notice(notice_payload("VOICE_CLONE"), uid="wrong")
    RejectedDelivery.objects.update(minute=timezone.now() - timezone.timedelta(days=31))
    deliver_notice(notice_payload("VOICE_CLONE"), uid="")
    assert prune().rejections == 1
    assert list(counts()) == [("missing_uid", 403, "127.0.0.1")]
