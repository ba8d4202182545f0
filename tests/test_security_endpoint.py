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
from io import StringIO
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.support.checks import ids, ours
from tests.support.settings import UID, UID_B
from topview_callbacks.biz_types import BizType
from topview_callbacks.models import Notice, RejectedDelivery, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db

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


# --- 3. anyone could make the pipeline's health critical -----------------------------------

TOKEN, TOKEN_B = "path-token-default-0123456789", "path-token-brand-b-0123456789"
WITH_TOKENS: dict[str, Any] = {
    "UID": UID,
    "API_KEY": "k",
    "NOTICE_TOKENS": [TOKEN],
    "NOTICE_URL": f"https://example.com/topview/notice/{TOKEN}/",
    "ACCOUNTS": {
        "brand-b": {
            "UID": UID_B,
            "API_KEY": "k",
            "NOTICE_TOKENS": [TOKEN_B],
            "NOTICE_URL": f"https://example.com/topview/notice/{TOKEN_B}/",
        }
    },
    "PROCESSING": "manual",
}
WITHOUT_TOKENS: dict[str, Any] = {"UID": UID, "API_KEY": "k", "PROCESSING": "manual"}


def health() -> tuple[int, dict[str, Any]]:
    out = StringIO()
    try:
        call_command("topview_health", "--json", stdout=out)
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    [finding] = [c for c in json.loads(out.getvalue())["checks"] if c["name"] == REJECTED]
    return code, finding


REJECTED = "rejected_deliveries"


def post(path: str, uid: str | None, **extra: Any) -> int:
    headers = {"Topview-Uid": uid} if uid is not None else {}
    body = json.dumps(notice_payload("VOICE_CLONE"))
    response = Client().post(
        path, data=body, content_type="application/json", headers=headers, **extra
    )
    return int(response.status_code)


def get(path: str) -> int:
    return int(Client().get(path).status_code)


@pytest.mark.parametrize(
    ("config", "stray"),
    [
        (WITH_TOKENS, lambda: get("/topview/notice/scanner-was-here/")),
        (WITH_TOKENS, lambda: post("/topview/notice/guess-0123456789abcdef/", "a-guessed-uid")),
        (WITH_TOKENS, lambda: post("/topview/notice/", None)),
        (WITH_TOKENS, lambda: post("/topview/notice/", "a-guessed-uid")),
        (WITHOUT_TOKENS, lambda: post("/topview/notice/", "a-guessed-uid")),
        (WITHOUT_TOKENS, lambda: get("/topview/notice/scanner-was-here/")),
    ],
)
def test_round2_f3_a_stray_request_is_at_most_a_warning(
    config: dict[str, Any], stray: Any, settings: Any
) -> None:
    settings.TOPVIEW_CALLBACKS = config
    assert stray() == 403
    assert health()[0] == 0  # one: below REJECTIONS_WARNING
    for _ in range(11):
        stray()
    code, finding = health()
    assert (code, finding["level"]) == (1, "warning")


@pytest.mark.parametrize(
    ("request_", "reason", "words"),
    [
        # Topview's token, a UID this site does not know: the UID setting is wrong.
        (
            lambda: post(f"/topview/notice/{TOKEN}/", "uid-topview-really-sends"),
            "wrong_uid_known_sender",
            "Compare TOPVIEW_CALLBACKS['UID']",
        ),
        # This site's UID, a token it does not have (NOTICE_URL given to Topview is stale).
        (
            lambda: post("/topview/notice/an-old-token-0123456789/", UID),
            "wrong_token_known_uid",
            "ends in one of its NOTICE_TOKENS",
        ),
        (lambda: post("/topview/notice/", UID), "wrong_token_known_uid", "NOTICE_URL"),
    ],
)
def test_round2_f3_a_request_with_one_right_credential_is_critical_and_says_what_to_check(
    request_: Any, reason: str, words: str, settings: Any
) -> None:
    settings.TOPVIEW_CALLBACKS = WITH_TOKENS
    assert request_() == 403

    code, finding = health()

    assert (code, finding["level"]) == (2, "critical")
    assert f"({reason}: 1)" in finding["summary"] and words in finding["summary"]
    assert "Probably a settings mistake" in finding["summary"]
    assert TOKEN not in finding["summary"] and UID not in finding["summary"]


def test_round2_f3_a_wrong_uid_from_an_allowed_address_is_critical(settings: Any) -> None:
    settings.TOPVIEW_CALLBACKS = {**WITHOUT_TOKENS, "ALLOWED_IPS": ["203.0.113.0/24"]}
    assert post("/topview/notice/", "uid-topview-sends", REMOTE_ADDR="203.0.113.9") == 403
    assert post("/topview/notice/", "a-guessed-uid", REMOTE_ADDR="198.51.100.1") == 403

    code, finding = health()

    assert code == 2
    assert (
        "wrong_uid_known_sender: 1" in finding["summary"] and "wrong_uid: 1" in finding["summary"]
    )


@pytest.mark.parametrize(
    ("config", "path", "reason", "words"),
    [
        (
            WITH_TOKENS,
            "/topview/notice/",  # the token is checked first: missing
            "missing_token",
            "someone sent a bad request (a scanner, a guess, a test by hand), not Topview",
        ),
        (
            WITHOUT_TOKENS,
            "/topview/notice/",
            "wrong_uid",
            "Without a path token (NOTICE_TOKENS) this site cannot tell",
        ),
    ],
)
def test_round2_f3_health_after_one_wrong_uid_says_what_happened_in_plain_words(
    config: dict[str, Any], path: str, reason: str, words: str, settings: Any
) -> None:
    settings.TOPVIEW_CALLBACKS = config
    post(path, "a-uid-typed-by-hand")

    out = StringIO()
    call_command("topview_health", stdout=out)

    [line] = [line for line in out.getvalue().splitlines() if REJECTED in line]
    assert line.startswith("OK")
    assert f"1 request refused in the last hour ({reason}: 1)." in line
    assert words in line


# --- 11. the default account's token and allow-list opened every account ------------------


@pytest.mark.parametrize(
    ("path", "uid", "status"),
    [
        (f"/topview/notice/{TOKEN}/", UID, 200),
        (f"/topview/notice/{TOKEN}/", UID_B, 403),  # the default token, brand-b's UID
        (f"/topview/notice/{TOKEN_B}/", UID_B, 200),
        (f"/topview/notice/{TOKEN_B}/", UID, 403),
    ],
)
def test_round2_f11_one_accounts_token_never_opens_another_accounts_notices(
    path: str, uid: str, status: int, settings: Any
) -> None:
    settings.TOPVIEW_CALLBACKS = WITH_TOKENS

    assert post(path, uid) == status
    assert Notice.objects.count() == (1 if status == 200 else 0)


def test_round2_f11_the_default_accounts_allow_list_is_its_own(settings: Any) -> None:
    settings.TOPVIEW_CALLBACKS = {
        **WITHOUT_TOKENS,
        "ALLOWED_IPS": ["203.0.113.0/24"],
        "ACCOUNTS": {"brand-b": {"UID": UID_B, "ALLOWED_IPS": ["198.51.100.0/24"]}},
    }
    assert post("/topview/notice/", UID, REMOTE_ADDR="203.0.113.9") == 200
    assert post("/topview/notice/", UID_B, REMOTE_ADDR="203.0.113.9") == 403
    assert post("/topview/notice/", UID_B, REMOTE_ADDR="198.51.100.7") == 200


def test_round2_f11_w008_names_an_account_whose_notice_url_holds_anothers_token(
    settings: Any,
) -> None:
    settings.DEBUG = True  # the deployment warnings are not what this test is about
    inherited = {**WITH_TOKENS, "ACCOUNTS": {"brand-b": {"UID": UID_B, "API_KEY": "k"}}}
    assert "topview_callbacks.W009" in ids(TOPVIEW_CALLBACKS=inherited)
    assert "topview_callbacks.W009" not in ids(TOPVIEW_CALLBACKS=WITH_TOKENS)


# --- 10. the path token reaching logs ----------------------------------------------------


def test_round2_f10_check_e009_never_prints_the_path_token(settings: Any) -> None:
    settings.TOPVIEW_CALLBACKS = {
        **WITH_TOKENS,
        "NOTICE_URL": f"127.0.0.1:18900/topview/notice/{TOKEN}/",  # the scheme forgotten
    }
    [message] = [m for m in ours() if m.id == "topview_callbacks.E009"]

    assert TOKEN not in str(message)
    assert "'127.0.0.1:18900/topview/notice/<token>/'" in message.msg


@pytest.mark.parametrize(
    "path",
    [
        f"/topview/notice/{TOKEN}/extra/",
        f"/topview/notice/{TOKEN}//",
        f"/topview//notice/{TOKEN}/",
        "/topview/notice/guessed-token/../../etc/",
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_round2_f10_an_unrouted_path_under_notice_gets_a_404_that_logs_no_token(
    path: str, method: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TOPVIEW_CALLBACKS = WITH_TOKENS
    with caplog.at_level(logging.DEBUG):
        if method == "get":
            response = Client().get(path)
        else:
            response = Client().post(path, data="{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json()["code"] == "404"
    lines = [record.getMessage() for record in caplog.records]
    assert lines and not any(TOKEN in line or "guessed-token" in line for line in lines), lines
    assert not [r for r in caplog.records if r.name == "django.request"]
    [line] = rejection_lines(caplog)
    assert "not_found (404)" in line
    assert RejectedDelivery.objects.get().reason == "not_found"


# --- 9. the rejections table grew by one row per source address per minute -----------------


def test_round2_f9_refusals_from_many_addresses_make_a_bounded_number_of_rows(
    settings: Any,
) -> None:
    from topview_callbacks.models.rejections import OTHER_SOURCES, ROWS_PER_MINUTE

    settings.TOPVIEW_CALLBACKS = WITH_TOKENS
    senders = [
        *(f"203.0.113.{n}" for n in range(40)),  # one /24: a row each (40 < 50)
        *(f"2001:db8:1:2::{n:x}" for n in range(1, 101)),  # one /64: 10 rows, then its own
        *(f"2001:db8:aa:{n:x}::1" for n in range(200)),  # 200 /64s: networks, then "other"
    ]
    minute = timezone.now().replace(second=30)
    with mock.patch("django.utils.timezone.now", return_value=minute):
        for address in senders:
            assert Client().get("/topview/notice/scanner/", REMOTE_ADDR=address).status_code == 403

    rows = dict(RejectedDelivery.objects.values_list("remote_addr", "count"))
    assert sum(rows.values()) == len(senders)  # every refusal counted
    assert len(rows) == ROWS_PER_MINUTE + 1  # not 340
    # 40 + 10 addresses of their own; the first /64's other 90 on its row; 49 more /64s on
    # one row each, which fills the minute's 100; the other 151 on one row.
    assert rows["203.0.113.7"] == 1 and rows["2001:db8:1:2::a"] == 1
    assert rows["2001:db8:1:2::/64"] == 90
    assert rows["2001:db8:aa:30::/64"] == 1 and "2001:db8:aa:31::/64" not in rows
    assert rows[OTHER_SOURCES] == 151


# --- 6. bizType is free text, used as a metric label and a dashboard row -------------------


@pytest.mark.django_db(transaction=True)
def test_round2_f6_unknown_biz_types_share_one_metric_label(settings: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from topview_callbacks.metrics import receivers

    token = "metrics-token-0123456789"
    settings.TOPVIEW_CALLBACKS = {**WITHOUT_TOKENS, "METRICS": True, "METRICS_TOKEN": token}
    receivers.connect()
    try:
        for n in range(30):
            payload = notice_payload("VOICE_CLONE", result={"status": "success"})
            payload["bizType"] = f"CARD-{n:04d}-<svg onload=alert({n})>"
            assert deliver_notice(payload).status_code == 200
        scrape = Client().get("/topview/metrics/", headers={"Authorization": f"Bearer {token}"})
    finally:
        receivers.disconnect()

    labels = {
        sample.labels["biz_type"]
        for family in text_string_to_metric_families(scrape.content.decode())
        for sample in family.samples
        if "biz_type" in sample.labels
    }
    assert "other" in labels
    assert labels <= {*BizType.values, "other"}


def test_round2_f6_unknown_biz_types_share_one_dashboard_row(admin_client: Client) -> None:
    done = timezone.now()  # the table counts the tasks that finished in the last 7 days
    for n in range(30):
        SubmittedTask.objects.create(
            biz_type=f"CARD-{n:04d}", task_id=f"t-{n}", status="success", completed_at=done
        )
    SubmittedTask.objects.create(
        biz_type="VOICE_CLONE", task_id="v", status="success", completed_at=done
    )

    html = admin_client.get("/admin/topview_callbacks/notice/dashboard/").content.decode()

    assert '<tr class="biz-other"><td>other</td><td>30</td>' in html
    assert '<tr class="biz-voice_clone"><td>VOICE_CLONE</td><td>1</td>' in html
    assert "CARD-" not in html
