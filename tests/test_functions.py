"""PostgreSQL's ``topview_callbacks_receive``: the version every call checks, and ``migrate``
replacing a function another version of the code installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connection

from tests.support.settings import forget_built_statements, topview
from topview_callbacks.models import Notice, NoticeKey
from topview_callbacks.processing import functions
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def install_stale_function() -> None:
    """The function as another version of the code would have left it."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION {functions.NAME}")
        cursor.execute(functions.definition(connection, "0123456789abcdef"))
        cursor.execute(f"COMMENT ON FUNCTION {functions.NAME} IS '0123456789abcdef'")


def test_the_migrations_leave_the_function_this_code_calls() -> None:
    assert functions.installed_version(connection) == functions.version(connection)
    assert functions.ensure(connection) is False  # nothing to do


def test_a_stale_function_refuses_the_call_and_the_notice_gets_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_stale_function()
    with caplog.at_level("ERROR"):
        response = deliver_notice(notice_payload("VOICE_CLONE"))
    assert response.status_code == 503  # Topview retries; nothing half-recorded
    assert not Notice.objects.exists()
    # What the operator reads in the logged error: what is wrong, and the command fixing it.
    [error] = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert str(error).startswith(
        "topview_callbacks: the database function topview_callbacks_receive is not the one "
        "this code calls; run manage.py migrate\n"
    )


def test_migrate_replaces_a_stale_function() -> None:
    install_stale_function()
    call_command("migrate", verbosity=0)  # no migration to apply: post_migrate does it
    assert functions.installed_version(connection) == functions.version(connection)
    assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
    assert Notice.objects.get().state == "processed"


# --- pinned down by mutation testing on PostgreSQL (docs/mutation-testing.md) ----------------


def test_ensure_says_whether_it_replaced_the_function() -> None:
    install_stale_function()
    assert functions.installed_version(connection) == "0123456789abcdef"
    assert functions.ensure(connection) is True
    assert functions.installed_version(connection) == functions.version(connection)
    assert functions.ensure(connection) is False


class _Psycopg2Error(Exception):
    """What psycopg2 raises: the SQLSTATE is ``pgcode`` (psycopg 3: ``sqlstate``)."""

    pgcode = functions.STORED_CONCURRENTLY


def test_a_uuid_stored_concurrently_is_recognised_from_psycopg2_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Django wraps the driver's error and keeps it as __cause__; the race test in
    # test_concurrency.py covers psycopg 3 end to end, this the other driver's spelling.
    from django.db import DatabaseError

    def refused(*args: object) -> None:
        raise DatabaseError("stored concurrently") from _Psycopg2Error()

    monkeypatch.setattr(functions, "bound_fetchone", refused)
    with pytest.raises(functions.StoredConcurrently):
        functions.receive(connection, {"uuid": "u"}, None)


@pytest.fixture
def keyed_function() -> Iterator[None]:
    """The function built from the keyed statements (PARTITION_NOTICES), over the plain
    table: the key table exists on every database. Installed in the test's transaction,
    which takes it back."""
    try:
        with topview(PARTITION_NOTICES=True):
            forget_built_statements()
            functions.ensure(connection)
            yield
    finally:
        forget_built_statements()


def test_the_function_built_from_the_keyed_statements_stores_a_uuid_once_with_its_key(
    keyed_function: None,
) -> None:
    # The partitioned layout's own tests run in nox -s partitioned only; this one runs
    # its statements in every PostgreSQL run, mutation testing's included.
    payload = notice_payload("VOICE_CLONE")
    assert deliver_notice(payload).status_code == 200
    assert deliver_notice(payload).status_code == 200  # found through its key
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert notice.state == "processed"
    assert NoticeKey.objects.get(uuid=payload["uuid"]).received_at == notice.received_at
