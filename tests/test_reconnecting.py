"""A delivery after a database restart: the kept connection is broken, the notice is stored
on a new one; a database really down still gets the contract's 503."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError, connection, transaction

from tests.support.settings import BEHIND_PGBOUNCER, POSTGRESQL_PORT, topview
from topview_callbacks import dispatch
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def kept_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The notices' connection, opened and kept (CONN_MAX_AGE) without a health check,
    and another connection to break it from outside: to the server's "postgres" database
    (ALTER DATABASE refuses to close the one it is connected to), straight to PostgreSQL,
    not through PgBouncer (nox -s pgbouncer), whose connections are shared."""
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", False)
    connection.close()
    connection.ensure_connection()
    side = connection.get_new_connection(
        {**connection.get_connection_params(), "port": POSTGRESQL_PORT, "dbname": "postgres"}
    )
    side.autocommit = True
    yield side
    side.close()


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(side: Any, pid: int) -> None:
    """What a restart of PostgreSQL does to the app's kept connection to it; behind
    PgBouncer, what a restart of PgBouncer does (a server connection that PostgreSQL ends
    under PgBouncer only costs PgBouncer a new one: its clients never see it)."""
    if BEHIND_PGBOUNCER:
        drop_pgbouncer_clients()
        return
    with side.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):  # the backend exits a moment after the signal
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} still runs")


def drop_pgbouncer_clients() -> None:
    """PgBouncer's admin console: close every client and server connection of the test
    database at once, then let new ones in."""
    import psycopg

    name = connection.settings_dict["NAME"]
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params["host"], port=params["port"], user="postgres", dbname="pgbouncer"
    ) as admin:
        admin.autocommit = True
        for command in (f"KILL {name}", f"RESUME {name}"):
            # The admin console speaks the simple query protocol only.
            result = admin.pgconn.exec_(command.encode())
            assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message


@pytest.mark.parametrize("mode", ["inline", "manual"])
def test_a_delivery_on_a_connection_broken_by_a_restart_is_stored(
    kept_connection: Any, record_signal: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    fired = record_signal()
    with topview(PROCESSING=mode):
        assert deliver_notice(notice_payload()).status_code == 200  # the connection is kept
        broken = backend_pid()
        terminate(kept_connection, broken)
        payload = notice_payload()
        with caplog.at_level("WARNING", logger="topview_callbacks.processing.reconnecting"):
            response = deliver_notice(payload)
    # The line an operator finds when looking for why a restart went unnoticed.
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing.reconnecting"]
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        "The database connection 'default' was lost (the database or its pooler restarted?): "
        "storing the notice once more on a new connection"
    )
    assert record.exc_info  # the error that was seen, with its traceback
    assert isinstance(record.exc_info[1], (OperationalError, InterfaceError))
    assert response.status_code == 200, response.content
    assert response.json()["result"]["result"] == "success"
    assert backend_pid() != broken  # stored on a new connection
    notice = Notice.objects.get(uuid=payload["uuid"])
    expected = NoticeState.PROCESSED if mode == "inline" else NoticeState.PENDING
    assert notice.state == expected
    assert len(fired.calls) == (2 if mode == "inline" else 0)  # each outcome once


def test_a_repeated_delivery_on_a_broken_connection_is_acknowledged_once(
    kept_connection: Any, record_signal: Any
) -> None:
    fired = record_signal()
    payload = notice_payload()
    assert deliver_notice(payload).status_code == 200
    terminate(kept_connection, backend_pid())
    assert deliver_notice(payload).status_code == 200
    assert Notice.objects.filter(uuid=payload["uuid"]).count() == 1
    assert len(fired.calls) == 1


@pytest.mark.skipif(
    BEHIND_PGBOUNCER,
    reason="PgBouncer holds clients while its server is refused (server_login_retry): the "
    "pooler's clients would wait, and the next tests with them",
)
def test_a_database_really_down_still_gets_503_in_the_envelope(kept_connection: Any) -> None:
    name = connection.settings_dict["NAME"]
    deliver_notice(notice_payload())
    with kept_connection.cursor() as cursor:
        # No new connection is let in: what the app sees of a database that is down.
        cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            terminate(kept_connection, backend_pid())
            payload = notice_payload()
            response = deliver_notice(payload)
        finally:
            cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "503"
    assert body["message"] == "The database is unavailable; please retry."
    assert body["result"]["result"] == "fail"
    assert body["result"]["uuid"] == payload["uuid"]
    # Once it is back, Topview's next try is stored.
    assert deliver_notice(payload).status_code == 200
    assert Notice.objects.filter(uuid=payload["uuid"]).count() == 1


def test_inside_the_callers_transaction_a_lost_connection_is_not_retried(
    kept_connection: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """What the caller wrote before went with the connection: storing the notice alone on
    a new one would commit half of the caller's work."""
    deliver_notice(notice_payload())
    terminate(kept_connection, backend_pid())
    values = {"uuid": "u-lost", "biz_type": "VOICE_CLONE", "task_id": "t-1", "status": "success"}
    with (
        caplog.at_level("WARNING", logger="topview_callbacks.processing.reconnecting"),
        topview(PROCESSING="manual"),
        pytest.raises(OperationalError),
        transaction.atomic(),
    ):
        dispatch.deliver(values)
    connection.close()
    assert not Notice.objects.filter(uuid="u-lost").exists()
    assert caplog.records == []  # no "storing the notice once more": it is not


def test_an_error_on_a_connection_that_still_works_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A statement timeout, a lock timeout: the connection the store began on is still
    # there and answers, so the error is the caller's to see, once.
    from topview_callbacks.processing.reconnecting import once_more_if_connection_lost

    tries: list[int] = []

    def store() -> None:
        tries.append(backend_pid())
        raise OperationalError("canceling statement due to statement timeout")

    with (
        caplog.at_level("WARNING", logger="topview_callbacks.processing.reconnecting"),
        pytest.raises(OperationalError),
    ):
        once_more_if_connection_lost(store)
    assert len(tries) == 1
    assert caplog.records == []
