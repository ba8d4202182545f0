"""The endpoint served through Django's ASGI handler (what uvicorn runs), not WSGI's.

Each test runs twice: with ``topview_callbacks.urls`` (the synchronous view, which Django
runs in a new thread for each request under ASGI, asgiref's ``ThreadSensitiveContext``)
and with ``topview_callbacks.urls_async`` (the async view, running the same code in the
event loop's executor threads). The guarantees of tests/test_views.py must hold with
either, also when deliveries of one uuid arrive at the same moment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.urls import resolve

from tests.support.asgi import Answer, post_at_once
from tests.support.readme_site import CONTRACT_UID
from tests.support.settings import UID, topview
from topview_callbacks import signals
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload
from topview_callbacks.views import async_notice_view

FIXTURES = Path(__file__).parent / "fixtures"
URL = "/topview/notice/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True, params=["tests.urls", "tests.support.urls_async"])
def urlconf(request: pytest.FixtureRequest, settings: Any) -> str:
    """The sync view's routes, then the async view's."""
    settings.ROOT_URLCONF = request.param
    return str(request.param)


@pytest.fixture(autouse=True)
def connection_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request's thread opens its own connection: as Django asks under ASGI, it is
    closed at the end of the request (CONN_MAX_AGE = 0) rather than kept in a thread that
    is gone."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


def test_the_routes_serve_the_view_of_their_urlconf(urlconf: str) -> None:
    view = resolve(URL).func
    assert (view is async_notice_view) == (urlconf == "tests.support.urls_async")


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


@pytest.mark.parametrize("urlconf", ["tests.support.urls_async"], indirect=True)
def test_served_by_wsgi_the_async_routes_still_store_once(urlconf: str) -> None:
    payload = notice_payload()
    first = deliver_notice(payload)
    again = deliver_notice(payload)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert Notice.objects.get().state == NoticeState.PROCESSED
