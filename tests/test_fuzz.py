"""Property-based: no body makes the endpoint answer 5xx or store something it refused."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.settings import UID
from topview_callbacks.contract import parse_notice
from topview_callbacks.exceptions import NoticeValidationError
from topview_callbacks.models import Notice
from topview_callbacks.testing import notice_payload

REQUIRED = ("uuid", "bizType", "taskId", "status")
# CI's Django/Python matrix sessions run a tenth of the examples (TOPVIEW_FUZZ_SCALE=0.1):
# what is fuzzed here is our parsing, which no Django or Python version changes; `make test`
# and CI's `full` session run them all.
SCALE = float(os.environ.get("TOPVIEW_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=max(int(1500 * SCALE), 20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def broken_notices(draw: Any) -> bytes:
    """A notice with at least one thing wrong: a field missing or of a wrong type or value."""
    payload: dict[str, Any] = notice_payload()
    field = draw(st.sampled_from([*REQUIRED, "errorMsg", "result"]))
    how = draw(st.sampled_from(["remove", "retype", "bad-string"]))
    if how == "remove" and field in REQUIRED:
        del payload[field]
    elif how == "bad-string" and field in ("status", "result"):
        payload[field] = draw(
            st.text().filter(lambda s: s.lower() not in ("success", "fail", "failed", ""))
        )
        if field == "result":
            payload[field] = "{x" + payload[field]  # never valid JSON ("{" + "}" was)
    else:
        wrong = st.one_of(
            st.integers(),
            st.booleans(),
            st.lists(json_values, max_size=3),
            st.floats(allow_nan=False),
        )
        if field not in ("errorMsg", "result"):
            wrong = wrong | st.none() | st.dictionaries(st.text(), json_values, max_size=3)
        payload[field] = draw(wrong)
    return json.dumps(payload).encode()


def _a_valid_notice(body: bytes) -> bool:
    """Random bytes can spell a valid notice (hypothesis found one: extra keys are allowed)."""
    try:
        parse_notice(body)
    except NoticeValidationError:
        return False
    return True


bodies = st.one_of(
    st.binary(max_size=300).filter(lambda body: not _a_valid_notice(body)),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    broken_notices(),
)


def assert_refused_in_envelope(response: Any) -> None:
    assert response.status_code in (400, 413), response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["code", "message", "result"]
    assert body["code"] == str(response.status_code)
    assert body["message"]
    assert body["result"]["result"] == "fail"


@pytest.mark.django_db
@FUZZ
@given(body=bodies)
def test_malformed_bodies_are_refused_in_the_envelope_and_never_stored(body: bytes) -> None:
    response = Client().post(
        "/topview/notice/", data=body, content_type="application/json", headers={"Topview-Uid": UID}
    )
    assert_refused_in_envelope(response)
    assert Notice.objects.count() == 0


@pytest.mark.django_db
@settings(
    max_examples=max(int(400 * SCALE), 20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    uuid=st.text(min_size=1, max_size=128),
    task_id=st.text(min_size=1, max_size=128),
    error=st.none() | st.text(),
    result=st.dictionaries(st.text(), json_values, max_size=5),
    as_string=st.booleans(),
)
def test_well_typed_notices_with_any_content_are_stored_or_refused_never_5xx(
    uuid: str, task_id: str, error: str | None, result: dict[str, Any], as_string: bool
) -> None:
    payload = {
        "uuid": uuid,
        "bizType": "COMMON_TASK_TEXT2IMAGE",
        "taskId": task_id,
        "status": "success",
        "errorMsg": error,
        "result": json.dumps(result) if as_string else result,
    }
    before = Notice.objects.count()
    response = Client().post(
        "/topview/notice/",
        data=json.dumps(payload),
        content_type="application/json",
        headers={"Topview-Uid": UID},
    )
    if response.status_code == 200:
        assert Notice.objects.filter(uuid=uuid.strip()).exists()
    else:
        assert_refused_in_envelope(response)
        assert Notice.objects.count() == before
