"""The endpoint served through Django's ASGI handler (what uvicorn runs), not WSGI's.

Under ASGI Django runs the synchronous view in a thread of its own for each request
(asgiref's ``ThreadSensitiveContext`` per request), with that thread's own database
connection: the guarantees of tests/test_views.py must hold there too, also when
deliveries of one uuid arrive at the same moment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.support.asgi import Answer, post_at_once
from tests.support.readme_site import CONTRACT_UID
from tests.support.settings import UID, topview
from topview_callbacks import signals
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import notice_payload

FIXTURES = Path(__file__).parent / "fixtures"
URL = "/topview/notice/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def connection_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request's thread opens its own connection: as Django asks under ASGI, it is
    closed at the end of the request (CONN_MAX_AGE = 0) rather than kept in a thread that
    is gone."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


def post_all(*bodies: str, uid: str = UID) -> list[Answer]:
    headers = {"Content-Type": "application/json", "Topview-Uid": uid}
    return post_at_once(URL, list(bodies), headers)


@topview(UID=CONTRACT_UID)
def test_the_contract_example_is_acknowledged_byte_for_byte_and_stored_verbatim() -> None:
    raw = (FIXTURES / "contract_notice.json").read_text()
    (response,) = post_all(raw, uid=CONTRACT_UID)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    ack = json.loads((FIXTURES / "contract_ack.json").read_text())
    assert response.content == json.dumps(ack, separators=(",", ":")).encode()
    assert Notice.objects.get().raw_body == raw


# At once: PostgreSQL only. The suite's in-memory SQLite is shared between threads through
# its shared cache, whose table locks fail at once ("database table is locked").
@pytest.mark.postgres
def test_a_uuid_delivered_eight_times_at_once_is_stored_and_processed_once(
    record_signal: Any,
) -> None:
    fired = record_signal(signals.task_outcome)
    body = json.dumps(notice_payload(uuid="u-asgi"))
    responses = post_all(*[body] * 8)
    assert [response.status for response in responses] == [200] * 8
    assert len({response.content for response in responses}) == 1
    assert Notice.objects.get().state == NoticeState.PROCESSED
    assert len(fired.calls) == 1


@pytest.mark.postgres
def test_different_notices_at_once_are_each_stored() -> None:
    bodies = [json.dumps(notice_payload()) for _ in range(6)]
    assert [response.status for response in post_all(*bodies)] == [200] * 6
    assert Notice.objects.filter(state=NoticeState.PROCESSED).count() == 6


def test_an_unknown_uid_is_refused_in_the_envelope(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    (response,) = post_all(json.dumps(notice_payload()), uid="wrong-uid")
    assert response.status == 403
    assert response.json()["code"] == "403" and "Topview-Uid" in response.json()["message"]
    assert Notice.objects.count() == 0 and fired.calls == []


@pytest.mark.postgres
def test_no_connection_is_left_open_after_the_requests() -> None:
    def sessions() -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return int(cursor.fetchone()[0])

    before = sessions()
    post_all(*[json.dumps(notice_payload()) for _ in range(10)])
    # A closed connection's server process leaves pg_stat_activity a moment later.
    deadline = time.monotonic() + 10
    while sessions() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions() == before
