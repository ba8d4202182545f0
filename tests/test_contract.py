"""contract.parse_notice and acknowledgement: what is accepted, and every refusal's message.

The endpoint's tests (test_views.py) check the envelope and the status codes; here the
validation itself, directly. The refusal messages are part of the contract's answer (Topview
and whoever reads its delivery logs see them), so they are pinned word for word.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from topview_callbacks.contract import (
    MAX_BIZ_TYPE_LENGTH,
    MAX_ID_LENGTH,
    acknowledgement,
    parse_notice,
)
from topview_callbacks.exceptions import NoticeValidationError

NOTICE: dict[str, Any] = {
    "uuid": "n-1",
    "bizType": "VOICE_CLONE",
    "taskId": "t-1",
    "status": "success",
    "errorMsg": "",
    "result": '{"voice":{"voiceId":"v1"}}',
}


def body(**changes: Any) -> bytes:
    return json.dumps({**NOTICE, **changes}).encode()


def refusal(raw: bytes) -> str:
    with pytest.raises(NoticeValidationError) as caught:
        parse_notice(raw)
    assert caught.value.status_code == 400
    return str(caught.value)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        ({}, "an object"),
        ([], "an array"),
        (True, "a boolean"),
        (3, "a number"),
        (1.5, "a number"),
    ],
)
def test_a_mistyped_field_is_named_with_the_json_type_it_got(value: Any, name: str) -> None:
    assert refusal(body(bizType=value)) == f"'bizType' must be a string, not {name}."
    if value is not None:
        assert refusal(body(errorMsg=value)) == (
            f"'errorMsg' must be a string or null, not {name}."
        )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"  \n", "The request body is empty; expected a JSON notice."),
        (b"{nope", "The request body is not valid UTF-8 JSON."),
        (b"\xff{}", "The request body is not valid UTF-8 JSON."),
        (b'"text"', "The notice must be a JSON object, not a string."),
        (b"[]", "The notice must be a JSON object, not an array."),
        (body(uuid="  "), "'uuid' must not be empty."),
        (body(taskId="t" * (MAX_ID_LENGTH + 1)), "'taskId' is longer than 128 characters."),
        (body(status="s" * 17), "'status' is longer than 16 characters."),
        (body(status="done"), "'status' must be 'success' or 'fail'."),
        (body(result="{x"), "'result' is a string but not valid JSON."),
        (
            body(result="[1]"),
            "'result' must be a JSON object or a string holding one, not an array.",
        ),
        (body(uuid="a\u0000b"), "The notice must not contain NUL characters (\\u0000)."),
        (body(uuid="a\ud800b"), "The notice contains an unpaired UTF-16 surrogate escape."),
    ],
)
def test_each_refusal_says_what_is_wrong(raw: bytes, message: str) -> None:
    assert refusal(raw) == message


def test_a_missing_field_is_named() -> None:
    payload = dict(NOTICE)
    del payload["taskId"]
    assert refusal(json.dumps(payload).encode()) == "'taskId' is required."


def test_ids_and_biz_type_may_use_their_whole_length() -> None:
    notice = parse_notice(
        body(
            uuid="u" * MAX_ID_LENGTH, taskId="t" * MAX_ID_LENGTH, bizType="B" * MAX_BIZ_TYPE_LENGTH
        )
    )
    assert (len(notice.uuid), len(notice.task_id), len(notice.biz_type)) == (128, 128, 64)
    assert refusal(body(bizType="B" * (MAX_BIZ_TYPE_LENGTH + 1))) == (
        "'bizType' is longer than 64 characters."
    )


def test_an_empty_result_string_means_no_result() -> None:
    assert parse_notice(body(result="")).result is None


@pytest.mark.parametrize("number", ["1e999", "-1e999"])
def test_numbers_out_of_a_doubles_range_are_refused(number: str) -> None:
    # Python's json reads 1e999 as inf, which JSON columns cannot store.
    raw = body().replace(b'"result": "', b'"big": ' + number.encode() + b', "result": "')
    assert refusal(raw) == "The request body is not valid UTF-8 JSON."
    inner = json.dumps({**NOTICE, "result": '{"x": ' + number + "}"}).encode()
    assert refusal(inner) == "'result' is a string but not valid JSON."


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"\u0000key": 1}, "The notice must not contain NUL characters (\\u0000)."),
        ({"k": ["ok", "\u0000"]}, "The notice must not contain NUL characters (\\u0000)."),
        ({"\ud800": 1}, "The notice contains an unpaired UTF-16 surrogate escape."),
        ({"k": [{"deep": "\udfff"}]}, "The notice contains an unpaired UTF-16 surrogate escape."),
    ],
)
def test_unstorable_strings_are_refused_in_keys_lists_and_result_strings(
    result: dict[str, Any], message: str
) -> None:
    # Such strings are valid JSON but no database stores them (PostgreSQL refuses both):
    # as an object, and inside the result string Topview usually sends (escaped twice).
    assert refusal(body(result=result)) == message
    assert refusal(body(result=json.dumps(result))) == message


def test_the_parsed_notice_keeps_the_body_and_normalises_the_status() -> None:
    raw = body(uuid=" n-1 ", status="FAILED", errorMsg=None)
    notice = parse_notice(raw)
    assert notice.raw_body == raw.decode()
    assert (notice.uuid, notice.status, notice.error_message) == ("n-1", "fail", "")
    assert notice.result == {"voice": {"voiceId": "v1"}}


def test_the_acknowledgement_follows_the_contract() -> None:
    assert acknowledgement(uuid="n-1", topview_uid="uid", ok=True) == {
        "code": "200",
        "message": "Success",
        "result": {"uuid": "n-1", "topviewUid": "uid", "result": "success"},
    }
    refused = acknowledgement(uuid=None, topview_uid="uid", ok=False, code="400", message="no")
    assert refused["result"]["result"] == "fail" and refused["code"] == "400"
