"""The callback endpoint against the contract: acknowledgement, errors, storage."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client, override_settings

from tests.support.readme_site import CONTRACT_UID
from tests.support.settings import UID, UID_B, topview
from topview_callbacks import dispatch, processing, signals, sweeping
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

FIXTURES = Path(__file__).parent / "fixtures"
URL = "/topview/notice/"

pytestmark = pytest.mark.django_db(transaction=True)


def stores(sql: str) -> bool:
    """Whether a statement stores a notice: an INSERT, or PostgreSQL's inline function."""
    return sql.lstrip().startswith("INSERT") or "topview_callbacks_receive" in sql


def compact(text: str) -> bytes:
    """The same JSON, keys in the same order, without the example's line breaks."""
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False).encode()


def post(body: bytes | str, *, uid: str | None = UID, path: str = URL, **extra: Any) -> Any:
    headers = {"Topview-Uid": uid} if uid is not None else {}
    headers.update(extra.pop("headers", {}))
    return Client().post(path, data=body, content_type="application/json", headers=headers, **extra)


def assert_error(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["code", "message", "result"]
    assert body["code"] == str(status)
    assert body["result"]["result"] == "fail"
    for word in words:
        assert word in body["message"]
    assert Notice.objects.count() == 0
    return body


@topview(UID=CONTRACT_UID)
def test_contract_example_is_acknowledged_byte_for_byte() -> None:
    notice = (FIXTURES / "contract_notice.json").read_text()
    response = post(notice, uid=CONTRACT_UID)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == compact((FIXTURES / "contract_ack.json").read_text())


@topview(UID=CONTRACT_UID)
def test_contract_example_is_stored_verbatim_and_parsed() -> None:
    raw = (FIXTURES / "contract_notice.json").read_text()
    post(raw, uid=CONTRACT_UID, headers={"X-Forwarded-For": "10.0.0.1"})
    notice = Notice.objects.get()
    assert notice.raw_body == raw
    assert notice.uuid == "d7ab437f2aa24ed2846486a001376c3a"
    assert notice.biz_type == "M2V_PREVIEW"
    assert notice.task_id == "1a019a9be0cd4d79838671e53af2c20d"
    assert notice.status == "success"
    assert notice.error_message == ""
    assert notice.result["previewVideos"][0]["videoDuration"] == 36096000
    assert notice.account == "default"
    assert notice.remote_addr == "127.0.0.1"
    assert notice.headers["Topview-Uid"] == "NsD…"  # masked: staff may view headers
    assert notice.received_at is not None
    export = (
        "https://aigc.s3.amazonaws.com/analyzed_video/task/export/487a84446461405088b751861d497dfd"
    )
    assert notice.media() == [("video", f"{export}_topview.ai.mp4"), ("image", f"{export}.jpg")]


def test_result_given_as_an_object_is_stored_like_a_string_one() -> None:
    as_object = notice_payload("VOICE_CLONE", result_as_string=False)
    assert post(json.dumps(as_object)).status_code == 200
    stored = Notice.objects.get()
    assert stored.result == as_object["result"]
    assert stored.media() == [("audio", as_object["result"]["voice"]["demoAudioUrl"])]


def test_null_error_message_and_null_result_are_accepted() -> None:
    payload = {**notice_payload(status="fail"), "errorMsg": None, "result": None}
    assert post(json.dumps(payload)).status_code == 200
    stored = Notice.objects.get()
    assert (stored.error_message, stored.result, stored.status) == ("", None, "fail")


def test_secret_headers_are_not_stored() -> None:
    post(
        json.dumps(notice_payload()),
        headers={
            "Authorization": "Bearer sk-secret",
            "Cookie": "sessionid=abc",
            "X-Request-Id": "t1",
            # Credential headers a block-list missed (finding 5): only allow-listed ones stay.
            "X-Forwarded-Authorization": "Bearer fwd-secret",
            "Api-Key": "api-secret",
            "X-Access-Token": "access-secret",
            "X-Amz-Security-Token": "amz-secret",
            "X-Goog-Iap-Jwt-Assertion": "iap-secret",
            "X-Some-Future-Credential": "future-secret",
        },
    )
    headers = Notice.objects.get().headers
    assert headers["X-Request-Id"] == "t1"
    assert "secret" not in json.dumps(headers)
    assert "sessionid" not in json.dumps(headers)
    assert set(headers) == {"Content-Length", "Content-Type", "Topview-Uid", "X-Request-Id"}
    assert UID not in json.dumps(headers)  # masked: view-only staff see the headers


def test_every_allow_listed_header_is_kept_under_its_usual_name() -> None:
    from topview_callbacks.views import STORED_HEADERS

    sent = {
        "-".join(part.title() for part in name.split("-")): f"value of {name}"
        for name in STORED_HEADERS - {"content-type", "content-length", "host", "topview-uid"}
    }
    post(json.dumps(notice_payload()), headers=sent)
    headers = Notice.objects.get().headers
    assert {name: headers[name] for name in sent} == sent
    assert set(headers) == {*sent, "Content-Type", "Content-Length", "Topview-Uid"}


def test_duplicate_uuid_gets_the_same_acknowledgement_and_writes_nothing(
    record_signal: Any,
) -> None:
    fired = record_signal(signals.task_outcome)
    redelivered = record_signal(signals.notice_redelivered)
    payload = json.dumps(notice_payload(uuid="u-again"))
    first = post(payload)
    stored = Notice.objects.values().get()
    second = post(payload)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert Notice.objects.values().get() == stored
    assert len(fired.calls) == 1
    assert [(c["uuid"], c["account"]) for c in redelivered.calls] == [("u-again", "default")]


def test_every_configured_account_is_recognised() -> None:
    response = post(json.dumps(notice_payload()), uid=UID_B)
    assert response.json()["result"]["topviewUid"] == UID_B
    assert Notice.objects.get().account == "brand-b"


@pytest.mark.parametrize("uid", [None, "", "wrong-uid", UID + "x", UID[:-1]])
def test_missing_or_unknown_uid_is_refused_with_403(uid: str | None, record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    response = post(json.dumps(notice_payload()), uid=uid)
    assert_error(response, 403, "Topview-Uid")
    assert fired.calls == []


TOKEN = "t0k3n-abcdefghijklmnop"


@topview(NOTICE_TOKENS=["old-token-abcdefghijkl", TOKEN])
def test_a_configured_path_token_is_required() -> None:
    payload = json.dumps(notice_payload())
    assert_error(post(payload), 403, "token")
    assert_error(post(payload, path=f"{URL}not-the-token/"), 403, "token")
    assert post(payload, path=f"{URL}{TOKEN}/").status_code == 200
    assert Notice.objects.count() == 1


def test_a_token_path_is_refused_when_no_tokens_are_configured() -> None:
    assert_error(post(json.dumps(notice_payload()), path=f"{URL}{TOKEN}/"), 403, "token")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", ["empty"]),
        (b"{not json", ["JSON"]),
        (b"\xff\xfe{}", ["UTF-8"]),
        (b"[1, 2]", ["object", "array"]),
        (b'"uuid"', ["object", "string"]),
        (b'{"uuid": NaN}', ["JSON"]),
    ],
)
def test_malformed_bodies_get_400_in_the_envelope(body: bytes, words: list[str]) -> None:
    assert_error(post(body), 400, *words)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"uuid": None}, ["'uuid'", "string"]),
        ({"uuid": ""}, ["'uuid'", "empty"]),
        ({"uuid": 12}, ["'uuid'", "string", "number"]),
        ({"uuid": "x" * 129}, ["'uuid'", "longer than 128"]),
        ({"bizType": ["M2V_PREVIEW"]}, ["'bizType'", "array"]),
        ({"taskId": {}}, ["'taskId'", "object"]),
        ({"status": "done"}, ["'status'", "success", "fail"]),
        ({"status": True}, ["'status'", "boolean"]),
        ({"errorMsg": 5}, ["'errorMsg'"]),
        ({"result": "{broken"}, ["'result'", "not valid JSON"]),
        ({"result": "[1]"}, ["'result'", "object", "array"]),
        ({"result": 3}, ["'result'", "number"]),
        ({"uuid": "a\u0000b"}, ["NUL"]),
        ({"result": {"k": "\ud800"}}, ["surrogate"]),
    ],
)
def test_mistyped_fields_get_400_naming_the_field(change: dict[str, Any], words: list[str]) -> None:
    payload = {**notice_payload(), **change}
    assert_error(post(json.dumps(payload)), 400, *words)


@pytest.mark.parametrize("field", ["uuid", "bizType", "taskId", "status"])
def test_missing_required_fields_get_400(field: str) -> None:
    payload = notice_payload()
    del payload[field]
    assert_error(post(json.dumps(payload)), 400, f"'{field}' is required")


def test_failed_is_accepted_as_a_spelling_of_fail() -> None:
    assert post(json.dumps({**notice_payload(), "status": "failed"})).status_code == 200
    assert Notice.objects.get().status == "fail"


@topview(MAX_BODY_SIZE=300)
def test_oversized_body_gets_413() -> None:
    assert_error(post(json.dumps(notice_payload())), 413, "300 bytes")


def test_database_unavailable_gets_503_and_nothing_is_stored() -> None:
    def refuse_inserts(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if stores(sql):
            raise OperationalError("connection refused")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_inserts):
        response = post(json.dumps(notice_payload(uuid="u-503")))
    body = assert_error(response, 503, "retry")
    assert body["result"]["uuid"] == "u-503"


@pytest.mark.parametrize("mode, blocks", [("inline", 1), ("manual", 0)])
def test_the_notice_is_committed_before_the_acknowledgement_even_with_atomic_requests(
    mode: str, blocks: int
) -> None:
    seen: list[int] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql != "BEGIN":  # SQLite's own, sent as the transaction starts
            seen.append(len(connection.atomic_blocks))
        return execute(sql, params, many, context)

    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        with (
            topview(PROCESSING=mode),
            connection.execute_wrapper(watch),
        ):
            assert post(json.dumps(notice_payload())).status_code == 200
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False
    # Inline: the processing's own transaction, outermost; manual: an autocommit statement.
    # Never inside the request's transaction: committed when the acknowledgement leaves.
    assert seen and set(seen) == {blocks}


def test_one_sql_statement_stores_a_new_notice(django_assert_num_queries: Any) -> None:
    with topview(PROCESSING="manual"):
        with django_assert_num_queries(1):
            assert post(json.dumps(notice_payload())).status_code == 200
        payload = json.dumps(notice_payload())
        post(payload)
        with django_assert_num_queries(1):
            assert post(payload).status_code == 200


def test_csrf_and_host_drf_defaults_do_not_apply() -> None:
    # tests/settings.py sets hostile REST_FRAMEWORK defaults (admin-only, 1/day throttle,
    # browsable renderer, form parser, an exception handler that fails the test).
    client = Client(enforce_csrf_checks=True)
    for _ in range(3):
        response = client.post(
            URL,
            data=json.dumps(notice_payload()),
            content_type="application/json",
            headers={"Topview-Uid": UID, "Accept": "text/html"},
        )
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
    assert Notice.objects.count() == 3


@pytest.mark.parametrize("method", ["put", "patch", "delete", "options"])
def test_other_methods_get_405_in_the_envelope(method: str) -> None:
    response = getattr(Client(), method)(URL, headers={"Topview-Uid": UID})
    assert_error(response, 405, method.upper())


def test_get_and_head_probes_are_answered_without_storing() -> None:
    client = Client()
    get = client.get(URL)
    assert get.status_code == 200
    assert get.json() == {"code": "200", "message": "Success", "result": None}
    assert client.head(URL).status_code == 200
    assert Notice.objects.count() == 0


def test_unexpected_errors_are_a_json_500_not_an_html_page(monkeypatch: Any) -> None:
    def explode(*args: Any, **values: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(dispatch, "deliver", explode)
    body = assert_error(post(json.dumps(notice_payload())), 500, "retry")
    assert "boom" not in body["message"]


def test_a_failure_to_start_processing_still_acknowledges_and_leaves_it_pending(
    monkeypatch: Any,
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise OperationalError("lost connection")

    monkeypatch.setattr(processing, "process_due", broken)
    # VERIFY_WITH_QUERY: inline, the notice is stored first, then processed.
    with topview(VERIFY_WITH_QUERY=True):
        assert post(json.dumps(notice_payload())).status_code == 200
    notice = Notice.objects.get()
    assert notice.state == NoticeState.PENDING
    # The sweep restarts it (here: after SWEEP_AFTER = 0).
    assert list(sweeping.stuck_notices(timedelta(0))) == [notice]


def test_deliver_notice_helper_posts_to_the_named_route() -> None:
    response = deliver_notice(notice_payload("SCRAPER"))
    assert response.status_code == 200
    assert Notice.objects.get().biz_type == "SCRAPER"


# --- pinned down by mutation testing (docs/mutation-testing.md) ------------------------------
# These live at the end of the module, with their imports, so the section merges cleanly.

from django.db import DataError  # noqa: E402


@topview(NOTICE_TOKENS=[TOKEN], ACCOUNTS={})  # the one account has a token: no open route
def test_probes_need_the_configured_token_too() -> None:
    client = Client()
    assert_error(client.get(URL), 403, "Unknown notice URL token.")
    assert_error(client.get(f"{URL}not-the-token/"), 403, "token")
    probe = client.get(f"{URL}{TOKEN}/")
    assert probe.status_code == 200
    assert probe.json() == {"code": "200", "message": "Success", "result": None}


def test_refusals_after_the_uid_check_name_the_account_and_the_notice_when_known() -> None:
    # The acknowledgement's "result" tells Topview which account and notice it refers to.
    mistyped = post(json.dumps({**notice_payload(), "status": 1}))
    assert assert_error(mistyped, 400)["result"] == {
        "uuid": None,
        "topviewUid": UID,
        "result": "fail",
    }
    with topview(MAX_BODY_SIZE=300):
        too_big = post(json.dumps(notice_payload()))
    assert assert_error(too_big, 413)["result"]["topviewUid"] == UID

    def refuse_inserts(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if stores(sql):
            raise OperationalError("connection refused")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_inserts):
        unavailable = post(json.dumps(notice_payload(uuid="u-down")), uid=UID_B)
    assert assert_error(unavailable, 503)["result"] == {
        "uuid": "u-down",
        "topviewUid": UID_B,
        "result": "fail",
    }


def test_unexpected_errors_are_logged_with_their_traceback(
    monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **values: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(dispatch, "deliver", explode)  # storing (and processing)
    with caplog.at_level("ERROR", logger="topview_callbacks.views"):
        assert_error(post(json.dumps(notice_payload())), 500)
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.views"]
    assert "Topview notice endpoint" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


def refusing_inserts_with(exc: Exception) -> Any:
    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if stores(sql):
            raise exc
        return execute(sql, params, many, context)

    return connection.execute_wrapper(wrapper)


def test_a_notice_the_database_refuses_gets_400_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # PostgreSQL refuses some values SQLite takes (DataError); Topview must not retry those.
    too_long = DataError("value too long for type character varying")
    with (
        caplog.at_level("WARNING", logger="topview_callbacks.rejections"),
        refusing_inserts_with(too_long),
    ):
        response = post(json.dumps(notice_payload(uuid="u-refused")))
    body = assert_error(response, 400, "The notice could not be stored as sent.")
    assert body["result"] == {"uuid": "u-refused", "topviewUid": UID, "result": "fail"}
    # Logged once, with the rest of the refusals (rejections.record), naming the cause.
    [record] = [
        r
        for r in caplog.records
        if r.name == "topview_callbacks.rejections"
        and r.getMessage().startswith("Topview notice rejected")
    ]
    assert record.levelname == "WARNING"
    assert "u-refused" in record.getMessage() and "value too long" in record.getMessage()


def test_database_outages_and_duplicates_are_logged_with_the_uuid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="topview_callbacks.views"):
        with refusing_inserts_with(OperationalError("connection refused")):
            post(json.dumps(notice_payload(uuid="u-outage")))
        payload = json.dumps(notice_payload(uuid="u-twice"))
        post(payload)
        post(payload)
    outage, duplicate = [r for r in caplog.records if r.name == "topview_callbacks.views"]
    assert outage.levelname == "ERROR" and "u-outage" in outage.getMessage()
    assert outage.exc_info is not None and "connection refused" in str(outage.exc_info[1])
    assert duplicate.levelname == "INFO" and "u-twice" in duplicate.getMessage()


def test_a_body_of_exactly_max_body_size_is_accepted() -> None:
    body = json.dumps(notice_payload())
    with topview(MAX_BODY_SIZE=len(body) - 1):
        assert_error(post(body), 413, f"larger than {len(body) - 1} bytes")
    with topview(MAX_BODY_SIZE=len(body)):
        assert post(body).status_code == 200


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read() -> None:
    # Declared over MAX_BODY_SIZE but under Django's DATA_UPLOAD_MAX_MEMORY_SIZE; the test
    # client's input refuses reads past the real body, so reading it would fail.
    with topview(MAX_BODY_SIZE=300):
        assert_error(post(b"{}", CONTENT_LENGTH="1000"), 413, "larger than 300 bytes")
    assert_error(post(json.dumps(notice_payload()), CONTENT_LENGTH="not-a-number"), 413)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_djangos_own_upload_limit_is_a_413_too() -> None:
    assert_error(post(json.dumps(notice_payload())), 413)
