"""Notices partitioned by month (PARTITION_NOTICES): the layout, a uuid stored once
whoever writes it, retention by dropping months, and converting a plain table.

Run by ``nox -s partitioned`` (PostgreSQL with TOPVIEW_TEST_PARTITION_NOTICES=1), beside the
pipeline's own tests in the same layout; skipped elsewhere but for the conversion, which
migrates a database of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import psycopg
import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from tests.support.settings import ON_POSTGRES, POSTGRESQL_PORT, topview
from topview_callbacks import partitions, processing
from topview_callbacks.models import ArchivedMedia, Notice, NoticeKey, NoticeState, SubmittedTask
from topview_callbacks.processing import sql
from topview_callbacks.pruning import prune
from topview_callbacks.sweeping import restart_stuck
from topview_callbacks.testing import deliver_notice, notice_payload

PARTITIONED = ON_POSTGRES and os.environ.get("TOPVIEW_TEST_PARTITION_NOTICES") == "1"
partitioned_only = pytest.mark.skipif(
    not PARTITIONED, reason="needs TOPVIEW_TEST_PARTITION_NOTICES=1 on PostgreSQL"
)


def values(uuid: str, received_at: datetime | None = None, **more: Any) -> dict[str, Any]:
    return {
        "uuid": uuid,
        "biz_type": "M2V_PREVIEW",
        "task_id": f"task-{uuid}",
        "status": "success",
        "received_at": received_at or timezone.now(),
        **more,
    }


def keys() -> dict[str, datetime]:
    return dict(NoticeKey.objects.values_list("uuid", "received_at"))


def partition_of(notice_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM topview_callbacks_notice WHERE id = %s",
            [notice_id],
        )
        return str(cursor.fetchone()[0])


@partitioned_only
@pytest.mark.django_db
def test_notices_are_partitioned_by_month_with_a_default_and_no_uuid_index() -> None:
    assert partitions.is_partitioned(connection)
    this_month = partitions.month_of(timezone.now())
    starts = [month.start for month in partitions.months(connection)]
    assert this_month in starts and partitions.next_month(this_month) in starts
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename = 'topview_callbacks_noticekey', indexdef FROM pg_indexes "
            "WHERE tablename LIKE 'topview_callbacks_notice%%'"
        )
        found = cursor.fetchall()
    on_notices = [definition for of_keys, definition in found if not of_keys]
    assert on_notices and not [d for d in on_notices if "(uuid" in d]
    # The key table has its primary key only (no varchar_pattern_ops twin).
    assert len([of_keys for of_keys, _definition in found if of_keys]) == 1
    stored = processing.store(values("layout")).notice
    assert stored is not None
    assert partition_of(stored.pk) == partitions.partition_name(this_month)


@partitioned_only
@pytest.mark.django_db
def test_a_delivered_uuid_is_stored_once_with_its_key() -> None:
    payload = notice_payload(uuid="keyed-once")
    assert deliver_notice(payload).status_code == 200
    assert deliver_notice(payload).status_code == 200
    assert Notice.objects.filter(uuid="keyed-once").count() == 1
    assert keys()["keyed-once"] == Notice.objects.get(uuid="keyed-once").received_at


@partitioned_only
@pytest.mark.django_db
def test_a_repeated_delivery_looks_in_its_notice_s_month_only() -> None:
    # Without the key a uuid could be anywhere: every month would be searched, and no
    # month has an index on uuid.
    payload = notice_payload(uuid="looked-up")
    assert deliver_notice(payload).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
            + sql.statement(sql.find_notice(connection), connection.alias),
            {"uuid": "looked-up"},
        )
        lines = [row[0] for row in cursor.fetchall()]
    # A partition read shows as a scan of it followed by its alias; a bitmap index scan
    # names the index, with no alias.
    searched = {
        found[1]
        for line in lines
        if "never executed" not in line
        and (found := re.search(r" on (topview_callbacks_notice_\w+) \w+ \(", line))
    }
    assert len(searched) == 1, "\n".join(lines)
    assert len(partitions.months(connection)) > 1  # there were others to search


@partitioned_only
@pytest.mark.django_db
def test_notices_written_by_the_orm_keep_their_keys() -> None:
    written = Notice.objects.create(**values("orm-written"))
    assert processing.store(values("orm-written")).repeated
    with pytest.raises(IntegrityError), transaction.atomic():
        Notice.objects.create(**values("orm-written", timezone.now() + timedelta(days=40)))
    Notice.objects.filter(pk=written.pk).update(uuid="orm-renamed")
    assert set(keys()) == {"orm-renamed"}
    later = timezone.now() + timedelta(days=35)  # into next month's partition
    Notice.objects.filter(pk=written.pk).update(received_at=later)
    assert keys() == {"orm-renamed": later}
    written.delete()
    assert keys() == {}
    assert processing.store(values("orm-written")).notice is not None


@partitioned_only
@pytest.mark.django_db
def test_the_admin_finds_a_notice_by_uuid_through_its_key_or_by_task_id(admin_client: Any) -> None:
    notice = Notice.objects.create(**values("searched"))
    Notice.objects.create(**values("other"))
    url = "/admin/topview_callbacks/notice/"
    for term in ("searched", "task-searched"):
        found = admin_client.get(url, {"q": term}).context["cl"].result_list
        assert list(found) == [notice]
    assert list(admin_client.get(url, {"q": "missing"}).context["cl"].result_list) == []


@partitioned_only
@pytest.mark.django_db(transaction=True)
def test_racing_stores_of_the_same_uuids_keep_one_notice_each() -> None:
    uuids = [f"race-{n}" for n in range(60)]
    start = threading.Barrier(4)
    stored: list[int] = []

    def store_all(order: list[str]) -> None:
        try:
            start.wait()
            for uuid in order:
                received = processing.store(values(uuid))
                if received.notice is not None:
                    stored.append(received.notice.pk)
        finally:
            connections.close_all()

    orders = [uuids, uuids[::-1], uuids[::2] + uuids[1::2], uuids[1::2] + uuids[::2]]
    threads = [threading.Thread(target=store_all, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(stored) == len(uuids)
    assert sorted(Notice.objects.values_list("uuid", flat=True)) == sorted(uuids)
    assert set(keys()) == set(uuids)


@pytest.fixture
def old_month() -> Iterator[partitions.Month]:
    """The partition of a month four months back, created for the test."""
    month = partitions.month_of(timezone.now() - timedelta(days=120))
    partitions.create_ahead(
        connection, now=datetime.combine(month, datetime.min.time(), dt_timezone.utc), ahead=0
    )
    found = [m for m in partitions.months(connection) if m.start == month]
    yield found[0]
    with connection.cursor() as cursor:  # the test dropped it, unless it failed first
        cursor.execute(f"DROP TABLE IF EXISTS {found[0].name}")


@partitioned_only
@pytest.mark.django_db(transaction=True)
def test_prune_drops_a_month_past_retention_keeping_failed_and_pending_notices(
    old_month: partitions.Month,
) -> None:
    day = datetime.combine(old_month.start, datetime.min.time(), dt_timezone.utc) + timedelta(
        days=3
    )
    for n in range(5):
        Notice.objects.create(**values(f"done-{n}", day), state=NoticeState.PROCESSED)
    failed = Notice.objects.create(**values("failed", day), state=NoticeState.FAILED)
    pending = Notice.objects.create(**values("pending", day))
    recent = Notice.objects.create(**values("recent"), state=NoticeState.PROCESSED)
    task = SubmittedTask.objects.create(biz_type="M2V_PREVIEW", task_id="archived")
    media = ArchivedMedia.objects.create(
        task=task, notice=Notice.objects.get(uuid="done-0"), kind="video", index=0, source_url="u"
    )

    result = prune(older_than=timedelta(days=20), failed_older_than=timedelta(days=365))

    assert result.notices == 5
    assert old_month.name not in {m.name for m in partitions.months(connection)}
    assert set(Notice.objects.values_list("uuid", flat=True)) == {"failed", "pending", "recent"}
    assert set(keys()) == {"failed", "pending", "recent"}
    assert partition_of(failed.pk) == partitions.DEFAULT == partition_of(pending.pk)
    assert partition_of(recent.pk) != partitions.DEFAULT
    media.refresh_from_db()
    assert media.notice_id is None
    assert processing.store(values("failed")).repeated
    assert processing.store(values("done-1")).notice is not None  # as after a DELETE


@partitioned_only
@pytest.mark.django_db(transaction=True)
def test_failed_notices_go_with_their_month_once_past_their_own_retention(
    old_month: partitions.Month,
) -> None:
    day = datetime.combine(old_month.start, datetime.min.time(), dt_timezone.utc) + timedelta(
        days=3
    )
    Notice.objects.create(**values("failed", day), state=NoticeState.FAILED)
    retrying = Notice.objects.create(
        **values("retrying", day), state=NoticeState.FAILED, next_attempt_at=timezone.now()
    )
    result = prune(older_than=timedelta(days=20), failed_older_than=timedelta(days=20))
    assert result.notices == 1
    assert list(Notice.objects.values_list("pk", flat=True)) == [retrying.pk]


@partitioned_only
@pytest.mark.django_db(transaction=True)
def test_a_month_created_late_takes_its_notices_from_the_default_partition() -> None:
    later = partitions.month_of(timezone.now() + timedelta(days=200))
    moment = datetime.combine(later, datetime.min.time(), dt_timezone.utc) + timedelta(hours=5)
    early = processing.store(values("early", moment)).notice
    assert early is not None and partition_of(early.pk) == partitions.DEFAULT

    partitions.create_ahead(connection, now=moment, ahead=0)

    assert partition_of(early.pk) == partitions.partition_name(later)
    assert keys() == {"early": moment}
    assert processing.store(values("early", moment)).repeated


@partitioned_only
@pytest.mark.django_db(transaction=True)
def test_the_sweep_creates_the_coming_months() -> None:
    coming = partitions.next_month(partitions.month_of(timezone.now()))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {partitions.partition_name(coming)}")
    restart_stuck(restart=lambda notice_id: None)
    assert coming in {m.start for m in partitions.months(connection)}


def manage(database: str, *args: str, partitioned: bool) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TOPVIEW_TEST_DATABASE": "postgres",
        "PGDATABASE": database,
        "PGPORT": POSTGRESQL_PORT,
        "TOPVIEW_TEST_PARTITION_NOTICES": "1" if partitioned else "0",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def plain_database() -> Iterator[str]:
    """A database of its own, migrated with notices in one plain table."""
    name = f"{connection.settings_dict['NAME']}_convert"
    admin = psycopg.connect(
        host="127.0.0.1", port=POSTGRESQL_PORT, user="postgres", dbname="postgres", autocommit=True
    )
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        manage(name, "migrate", "-v0", partitioned=False)
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.skipif(not PARTITIONED, reason="one PostgreSQL run converts: the partitioned one")
@pytest.mark.django_db
def test_the_command_converts_a_plain_table_with_its_notices(plain_database: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", port=POSTGRESQL_PORT, user="postgres", dbname=plain_database
    ) as db:
        db.execute(
            "INSERT INTO topview_callbacks_notice (uuid, account, biz_type, task_id, status, "
            "error_message, raw_body, headers, source, received_at, state, attempts, "
            "last_error, claim) SELECT 'old-' || n, 'default', 'M2V_PREVIEW', 't' || n, "
            "'success', '', '', '{}', 'callback', now() - n * interval '20 days', "
            "'processed', 1, '', '' FROM generate_series(1, 10) n"
        )
    output = manage(plain_database, "topview_partition_notices", partitioned=True)
    assert "10 notice(s) copied" in output
    manage(plain_database, "check", "--database", "default", partitioned=True)
    with psycopg.connect(
        host="127.0.0.1", port=POSTGRESQL_PORT, user="postgres", dbname=plain_database
    ) as db:
        assert db.execute(
            "SELECT relkind FROM pg_class WHERE relname = 'topview_callbacks_notice'"
        ).fetchone() == ("p",)
        assert db.execute("SELECT count(*) FROM topview_callbacks_noticekey").fetchone() == (10,)
        months = db.execute(
            "SELECT count(*) FROM pg_inherits "
            "WHERE inhparent = 'topview_callbacks_notice'::regclass"
        ).fetchone()[0]
        assert months >= 8  # 200 days of notices, two months ahead, the DEFAULT partition
        row = db.execute(
            "INSERT INTO topview_callbacks_notice (uuid, account, biz_type, task_id, status, "
            "error_message, raw_body, headers, source, received_at, state, attempts, "
            "last_error, claim) VALUES ('new', 'default', 'M2V_PREVIEW', 't', 'success', '', '', "
            "'{}', 'callback', now(), 'pending', 0, '', '') RETURNING id"
        ).fetchone()
        assert row is not None and row[0] > 10


@pytest.mark.skipif(not ON_POSTGRES, reason="compares the setting with a PostgreSQL table")
@pytest.mark.django_db
def test_a_setting_that_disagrees_with_the_table_is_an_error() -> None:
    from topview_callbacks.checks.partitions import check_partition_layout

    assert check_partition_layout(databases=["default"]) == []
    with topview(PARTITION_NOTICES=not partitions.is_partitioned(connection)):
        found = check_partition_layout(databases=["default"])
    assert [m.id for m in found] == ["topview_callbacks.E100"]


@pytest.mark.skipif(ON_POSTGRES, reason="the setting is ignored on SQLite only")
def test_the_setting_is_ignored_on_sqlite_with_a_warning() -> None:
    from topview_callbacks.checks.partitions import check_partition_setting

    with topview(PARTITION_NOTICES=True):
        assert [m.id for m in check_partition_setting()] == ["topview_callbacks.W100"]
