"""W070-W072: kept connections without health checks, and settings PgBouncer's transaction
pooling cannot serve; W110: kept connections under ASGI."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.checks import GOOD, ids

W070, W071, W072 = (f"topview_callbacks.W07{n}" for n in range(3))
W110 = "topview_callbacks.W110"


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The notices' database as the checks see it: PostgreSQL, connections kept and
    health-checked, reached directly; the test changes its settings."""
    from django.db import connection

    monkeypatch.setattr(connection, "vendor", "postgresql")
    db = connection.settings_dict
    for key, value in {
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "OPTIONS": {},
        "DISABLE_SERVER_SIDE_CURSORS": False,
    }.items():
        monkeypatch.setitem(db, key, value)
    return db


def pooling(**settings: Any) -> list[str]:
    return [i for i in ids(TOPVIEW_CALLBACKS=GOOD, **settings) if i in (W070, W071, W072, W110)]


def test_a_healthy_direct_set_up_has_nothing_to_report(database: dict[str, Any]) -> None:
    assert pooling() == []


@pytest.mark.parametrize("max_age", [60, None])  # None: kept for ever
def test_w070_connections_kept_without_health_checks(
    database: dict[str, Any], max_age: int | None
) -> None:
    database.update(CONN_MAX_AGE=max_age, CONN_HEALTH_CHECKS=False)
    assert pooling() == [W070]
    assert pooling(DEBUG=True) == []


def test_w070_not_when_connections_are_not_kept_or_pooled(database: dict[str, Any]) -> None:
    database["CONN_HEALTH_CHECKS"] = False
    database["CONN_MAX_AGE"] = 0  # W004's problem, not this one
    assert pooling() == []
    database.update(CONN_MAX_AGE=0, OPTIONS={"pool": True})  # the pool checks them itself
    assert pooling() == []


def test_w070_not_on_sqlite(database: dict[str, Any]) -> None:
    from django.db import connection

    database["CONN_HEALTH_CHECKS"] = False
    connection.vendor = "sqlite"  # the fixture puts it back
    assert pooling() == []


@pytest.mark.parametrize(
    ("host", "port"), [("127.0.0.1", "6432"), ("127.0.0.1", 6432), ("pgbouncer.internal", "")]
)
def test_w071_server_side_cursors_behind_pgbouncer(
    database: dict[str, Any], host: str, port: str | int
) -> None:
    database.update(HOST=host, PORT=port)
    assert pooling() == [W071]
    database["DISABLE_SERVER_SIDE_CURSORS"] = True
    assert pooling() == []


def test_w071_not_on_postgresqls_own_port(database: dict[str, Any]) -> None:
    database["DISABLE_SERVER_SIDE_CURSORS"] = False
    assert pooling() == []


def test_w072_prepared_statements_behind_pgbouncer(database: dict[str, Any]) -> None:
    database.update(PORT="6432", DISABLE_SERVER_SIDE_CURSORS=True)
    database["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
    assert pooling() == [W072]
    database["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 0}
    assert pooling() == [W072]
    # Django's default threshold is None: server-side binding alone prepares nothing.
    database["OPTIONS"] = {"server_side_binding": True}
    assert pooling() == []
    database["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": None}
    assert pooling() == []
    database["OPTIONS"] = {"prepare_threshold": 0}  # client-side binding never prepares
    assert pooling() == []


def test_w072_not_when_connecting_to_postgresql_itself(database: dict[str, Any]) -> None:
    database["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
    assert pooling() == []


ASGI = "mysite.asgi.application"


@pytest.mark.parametrize("max_age", [60, None])
def test_w110_connections_kept_under_asgi(database: dict[str, Any], max_age: int | None) -> None:
    database["CONN_MAX_AGE"] = max_age
    assert pooling(ASGI_APPLICATION=ASGI) == [W110]
    assert pooling(ASGI_APPLICATION=ASGI, DEBUG=True) == []


def test_w110_not_with_a_pool_or_a_connection_per_request(database: dict[str, Any]) -> None:
    database.update(CONN_MAX_AGE=0, OPTIONS={"pool": True})
    assert pooling(ASGI_APPLICATION=ASGI) == []
    database.update(CONN_MAX_AGE=0, OPTIONS={})
    assert pooling(ASGI_APPLICATION=ASGI) == []  # slow (W004), but nothing is left open


def test_w110_not_without_asgi_application(database: dict[str, Any]) -> None:
    assert pooling() == []  # a WSGI site keeps its connections in its worker threads
