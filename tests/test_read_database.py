"""READ_DATABASE: the admin's lists, the dashboard and health read from that alias; what
acts on what it reads stays on the primary.

The alias is tests/settings.py's "replica": a streaming replica when
TOPVIEW_TEST_REPLICA_PORT names one, else a second connection to the same server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.support.admin import action
from tests.support.checks import GOOD, ids
from tests.support.replica import caught_up
from tests.support.settings import topview
from topview_callbacks import health
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

NOTICES = reverse("admin:topview_callbacks_notice_changelist")
DASHBOARD = "/admin/topview_callbacks/notice/dashboard/"
TABLE = Notice._meta.db_table

on_postgresql = pytest.mark.postgres
both = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def queries() -> Iterator[dict[str, CaptureQueriesContext]]:
    """The queries of each alias while the test body runs, by alias."""
    caught_up()
    captured = {
        alias: CaptureQueriesContext(connections[alias]) for alias in ("default", "replica")
    }
    for context in captured.values():
        context.__enter__()
    yield captured
    for context in captured.values():
        context.__exit__(None, None, None)


def touching(context: CaptureQueriesContext, table: str = TABLE, since: int = 0) -> list[str]:
    """The queries of ``context`` (from its ``since``-th) that read ``table``."""
    return [query["sql"] for query in context.captured_queries[since:] if table in query["sql"]]


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
    return client


@on_postgresql
@both
def test_health_reads_the_read_database(queries: dict[str, CaptureQueriesContext]) -> None:
    deliver_notice(notice_payload())
    with topview(PROCESSING="manual"):
        deliver_notice(notice_payload())
    caught_up()
    before = len(queries["default"].captured_queries)
    with topview(READ_DATABASE="replica"):
        measured = health.measure()
    assert measured.pending == 1
    assert measured.last_notice_at is not None
    assert touching(queries["replica"])
    assert not touching(queries["default"], since=before)


@on_postgresql
@both
def test_without_it_health_reads_the_primary(queries: dict[str, CaptureQueriesContext]) -> None:
    assert health.measure().pending == 0
    assert touching(queries["default"]) and not touching(queries["replica"])


@on_postgresql
@both
def test_the_dashboard_and_the_lists_read_the_read_database(
    staff: Client, queries: dict[str, CaptureQueriesContext]
) -> None:
    payload = notice_payload()
    deliver_notice(payload)
    caught_up()
    before = len(queries["default"].captured_queries)
    with topview(READ_DATABASE="replica"), mock_topview(credit=1.0):
        dashboard = staff.get(DASHBOARD)
        listed = staff.get(NOTICES, {"q": payload["uuid"]})
        dated = staff.get(NOTICES)
        tasks = staff.get(reverse("admin:topview_callbacks_submittedtask_changelist"))
    for response in (dashboard, listed, dated, tasks):
        assert response.status_code == 200
    assert payload["uuid"] in listed.content.decode()
    assert touching(queries["replica"])
    assert touching(queries["replica"], "topview_callbacks_submittedtask")
    assert not touching(queries["default"], since=before)


@on_postgresql
@both
def test_the_admins_actions_act_on_the_primary(
    staff: Client, queries: dict[str, CaptureQueriesContext]
) -> None:
    with topview(PROCESSING="manual"):
        deliver_notice(notice_payload("VOICE_CLONE"))
    notice = Notice.objects.get()
    caught_up()
    with topview(READ_DATABASE="replica"):
        response = action(staff, NOTICES, "reprocess", [notice], confirmed="yes")
    assert response.status_code == 200
    assert Notice.objects.get().state == NoticeState.PROCESSED
    writes = ("INSERT", "UPDATE", "DELETE", "FOR UPDATE")
    assert not [sql for sql in touching(queries["replica"]) if any(w in sql for w in writes)]
    assert [sql for sql in touching(queries["default"]) if "UPDATE" in sql]


def test_e070_an_alias_that_is_not_in_databases() -> None:
    assert "topview_callbacks.E070" in ids(TOPVIEW_CALLBACKS={**GOOD, "READ_DATABASE": "nope"})
    assert "topview_callbacks.E070" not in ids(
        TOPVIEW_CALLBACKS={**GOOD, "READ_DATABASE": "default"}
    )
    assert "topview_callbacks.E070" not in ids(TOPVIEW_CALLBACKS={**GOOD, "READ_DATABASE": None})
