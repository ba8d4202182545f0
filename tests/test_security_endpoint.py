"""Hardening, second round (issue 24): the endpoint, its refusals, health, logs and metrics.
Each finding of the December 2026 review, replayed through HTTP (Django's test client or a
live server), the management commands and the public functions.

The names say which finding they close: ``test_round2_f3_`` ... docs/security.md cites them.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from topview_callbacks.models import Notice, RejectedDelivery
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db

UID = "test-uid-NsDAaOPF4jLu"
REJECTIONS = "topview_callbacks.rejections"


def rejection_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == REJECTIONS]


# --- 7. a refused request's body is never read ---------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "headers",
    [
        "Topview-Uid: a-uid-nobody-configured\r\n",  # wrong UID
        "",  # no UID at all
    ],
)
def test_round2_f7_a_refused_request_is_answered_without_waiting_for_its_body(
    live_server: Any, headers: str
) -> None:
    address = urlsplit(live_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        # Declares 60,000 bytes, sends two: a reader of the body would wait for the rest.
        sock.sendall(
            b"POST /topview/notice/ HTTP/1.1\r\nHost: testserver\r\n"
            + headers.encode()
            + b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{}"
        )
        start = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 403")
    assert time.monotonic() - start < 2
    assert RejectedDelivery.objects.get().last_uuid == ""


# --- 8. log forging -----------------------------------------------------------------------


def test_round2_f8_a_uuid_from_a_refused_body_is_logged_as_a_repr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forged = "abc\nCRITICAL topview_callbacks.processing Receiver crashed\x1b[31m"
    with caplog.at_level(logging.WARNING):
        response = deliver_notice(json.dumps({"uuid": forged, "taskId": 5}))

    assert response.status_code == 400
    [line] = rejection_lines(caplog)
    assert "\n" not in line and "\x1b" not in line
    assert repr(forged) in line


@pytest.mark.parametrize("field", ["uuid", "taskId", "bizType"])
@pytest.mark.parametrize("smuggled", ["\n", "\r", "\x1b[31m", "\u202e", "\u2028", "\x85"])
def test_round2_f8_ids_with_control_or_format_characters_are_refused(
    field: str, smuggled: str
) -> None:
    payload = notice_payload("VOICE_CLONE")
    payload[field] = f"id{smuggled}CRITICAL forged"

    response = deliver_notice(payload)

    assert response.status_code == 400
    assert f"'{field}' must not contain control" in response.json()["message"]
    assert not Notice.objects.exists()


def test_round2_f8_a_plain_id_with_spaces_and_punctuation_is_still_accepted() -> None:
    payload = notice_payload("VOICE_CLONE", task_id="task 1/2 (retry) é")

    assert deliver_notice(payload, client=Client()).status_code == 200
