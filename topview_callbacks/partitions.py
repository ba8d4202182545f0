"""PostgreSQL: the notices table partitioned by month (``PARTITION_NOTICES``).

The table is ``PARTITION BY RANGE (received_at)``: one partition per calendar month (UTC),
named ``topview_callbacks_notice_pYYYY_MM``, and a DEFAULT partition, so that no insert is
ever refused, which also holds the notices kept past their month (failed ones, and ones
still to be processed). Its primary key is ``(id, received_at)``, as PostgreSQL requires;
Django's model still knows ``id`` only. A uuid's uniqueness lives in ``NoticeKey``.

- ``convert``: turn the plain table into the partitioned one (migration 0010 when the
  setting is on; ``manage.py topview_partition_notices`` later). It copies every row, in
  one transaction that holds the table's lock all along.
- ``create_ahead``: the current month and the next ones (the sweep, the command).
- ``drop_month``: retention by whole months (``pruning``): the rows to keep move to the
  DEFAULT partition, the month's keys go, the partition is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from datetime import timezone as dt_timezone

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from topview_callbacks.models import Notice, NoticeKey, partitioned_notices

logger = logging.getLogger(__name__)

NOTICES = "topview_callbacks_notice"
KEYS = "topview_callbacks_noticekey"
DEFAULT = f"{NOTICES}_default"
PLAIN = f"{NOTICES}_plain"
# A dropped month's partition while its keys are deleted: a run that stopped halfway
# finds it and finishes it.
GONE = f"{NOTICES}_gone_"
TRIGGER = "topview_notice_keys"
#: Months created ahead of the current one.
MONTHS_AHEAD = 2
KEY_BATCH = 50_000


def enabled(conn: BaseDatabaseWrapper) -> bool:
    """Whether notices are partitioned on this database: the setting, on PostgreSQL."""
    return partitioned_notices(conn)


def notice_connection() -> BaseDatabaseWrapper:
    return connections[router.db_for_write(Notice)]


def is_partitioned(conn: BaseDatabaseWrapper) -> bool:
    """Whether the notices table is partitioned now (what the database says)."""
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [NOTICES])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def has_keys(conn: BaseDatabaseWrapper) -> bool:
    """Whether the key table exists (migration 0010 ran)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [KEYS])
        return bool(cursor.fetchone()[0])


def month_of(moment: datetime) -> date:
    moment = moment.astimezone(dt_timezone.utc)
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{NOTICES}_p{month.year:04d}_{month.month:02d}"


@dataclass(frozen=True)
class Month:
    """A month's partition: its name and its range ``[start, end)``."""

    name: str
    start: date
    end: date


def months(conn: BaseDatabaseWrapper) -> list[Month]:
    """The monthly partitions the notices table has, oldest first."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) AND c.relname <> %s ORDER BY c.relname",
            [NOTICES, DEFAULT],
        )
        names = [str(row[0]) for row in cursor.fetchall()]
    found = []
    for name in names:
        year, month = name.removeprefix(f"{NOTICES}_p").split("_")
        start = date(int(year), int(month), 1)
        found.append(Month(name, start, next_month(start)))
    return found


def _create_month(conn: BaseDatabaseWrapper, month: date) -> bool:
    """Create ``month``'s partition (False: another process just did). Notices of that
    month already in the DEFAULT partition (its partition was missing when they came)
    move into it first, with their keys, in the same transaction."""
    name, end = partition_name(month), next_month(month)
    bounds = [month.isoformat(), end.isoformat()]
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        # Two sweeps at once: the second waits here, then finds the month made.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [NOTICES])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return False
        cursor.execute(f"CREATE TABLE {name} (LIKE {NOTICES})")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE received_at >= %s::timestamptz "
            f"AND received_at < %s::timestamptz RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [f"{bounds[0]} 00:00+00", f"{bounds[1]} 00:00+00"],
        )
        if cursor.rowcount:
            # The DELETE's trigger took their keys away: put them back before anyone looks.
            cursor.execute(
                f"INSERT INTO {KEYS} (uuid, received_at) SELECT uuid, received_at FROM {name}"
            )
        cursor.execute(
            f"ALTER TABLE {NOTICES} ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{bounds[0]} 00:00+00') TO ('{bounds[1]} 00:00+00')"
        )
    logger.info("Created the notices' partition %s", name)
    return True


def create_ahead(
    conn: BaseDatabaseWrapper | None = None, *, now: datetime, ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the partitions of the current month and ``ahead`` more that are missing;
    their names."""
    conn = conn or notice_connection()
    have = {m.start for m in months(conn)}
    month, created = month_of(now), []
    for _ in range(ahead + 1):
        if month not in have and _create_month(conn, month):
            created.append(partition_name(month))
        month = next_month(month)
    return created


def drop_month(conn: BaseDatabaseWrapper, month: Month, *, keep_where: str) -> int:
    """Drop ``month``'s partition; its rows matching ``keep_where`` (SQL on the notice's
    columns) are copied to the DEFAULT partition first, keys untouched. Returns how many
    rows went.

    The detach, the copy and a rename to ``GONE...`` are one transaction (the parent's
    lock is held for the catalog change and the copy of the kept rows); the keys are then
    deleted in batches and the table dropped, which a later run finishes if this one
    stops (``leftovers``)."""
    gone = f"{GONE}{month.start.year:04d}_{month.start.month:02d}"
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {NOTICES} DETACH PARTITION {month.name}")
        # No partition covers the month now: these land in the DEFAULT one (same keys).
        cursor.execute(f"INSERT INTO {NOTICES} SELECT * FROM {month.name} WHERE {keep_where}")
        cursor.execute(f"ALTER TABLE {month.name} RENAME TO {gone}")
    return finish_gone(conn, gone)


def finish_gone(conn: BaseDatabaseWrapper, gone: str) -> int:
    """Delete the keys of a detached month's notices but the kept ones (in the DEFAULT
    partition now), then the table; how many notices went."""
    going = (
        f"NOT EXISTS (SELECT 1 FROM {DEFAULT} d "
        "WHERE d.received_at = g.received_at AND d.id = g.id)"
    )
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FILTER (WHERE {going}), min(id), max(id) FROM {gone} g")
        count, low, high = cursor.fetchone()
        # ArchivedMedia.notice has no database constraint on a partitioned table: Django's
        # collector nulls it on a delete; nothing does on a drop, so it is done here.
        cursor.execute(
            "UPDATE topview_callbacks_archivedmedia SET notice_id = NULL "
            f"WHERE notice_id IN (SELECT id FROM {gone} g WHERE {going})"
        )
        while low is not None and low <= high:
            cursor.execute(
                f"DELETE FROM {KEYS} k USING {gone} g WHERE g.id >= %s AND g.id < %s "
                f"AND k.uuid = g.uuid AND k.received_at = g.received_at AND {going}",
                [low, low + KEY_BATCH],
            )
            low += KEY_BATCH
        cursor.execute(f"DROP TABLE {gone}")
    logger.info("Dropped %s notice(s) of %s", count, gone)
    return int(count)


def leftovers(conn: BaseDatabaseWrapper) -> list[str]:
    """Months detached by a run that stopped before dropping them."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s ORDER BY relname",
            [GONE.replace("_", r"\_") + "%"],
        )
        return [str(row[0]) for row in cursor.fetchall()]


# Keeps NoticeKey true when a notice changes other than through the store statement: its
# key follows a change of its uuid or month (BEFORE: a change of month moves the row to
# another partition, which runs the source partition's BEFORE UPDATE and AFTER DELETE
# triggers, not its AFTER UPDATE ones) and goes with it. A new notice's key is written by
# the store statement, or by Notice.save() (the ORM); no trigger on insert, which would
# cost every delivery a call.
TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $function$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM {KEYS} WHERE uuid = OLD.uuid AND received_at = OLD.received_at;
        RETURN OLD;
    END IF;
    UPDATE {KEYS} SET uuid = NEW.uuid, received_at = NEW.received_at
    WHERE uuid = OLD.uuid AND received_at = OLD.received_at;
    RETURN NEW;
END
$function$
"""

TRIGGERS = [
    f"CREATE TRIGGER {TRIGGER}_delete AFTER DELETE ON {NOTICES} "
    f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()",
    f"CREATE TRIGGER {TRIGGER}_update BEFORE UPDATE OF uuid, received_at ON {NOTICES} "
    "FOR EACH ROW WHEN (OLD.uuid IS DISTINCT FROM NEW.uuid "
    f"OR OLD.received_at IS DISTINCT FROM NEW.received_at) EXECUTE FUNCTION {TRIGGER}()",
]


def convert(conn: BaseDatabaseWrapper, *, now: datetime) -> int:
    """Turn the plain notices table into the partitioned one, rows, keys, indexes and
    all, in one transaction (the table is locked until it commits); how many rows moved.
    Does nothing on a table partitioned already."""
    if is_partitioned(conn):
        return 0
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {NOTICES} IN ACCESS EXCLUSIVE MODE")
        indexes = _index_definitions(cursor)
        foreign_keys = _outgoing_foreign_keys(cursor)
        cursor.execute(f"SELECT min(received_at), coalesce(max(id), 0) FROM {NOTICES}")
        oldest, last_id = cursor.fetchone()
        cursor.execute(f"ALTER TABLE {NOTICES} RENAME TO {PLAIN}")
        cursor.execute(f"CREATE TABLE {NOTICES} (LIKE {PLAIN}) PARTITION BY RANGE (received_at)")
        cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {NOTICES} DEFAULT")
        month = month_of(oldest or now)
        while month <= month_of(now):
            _create_month(conn, month)
            month = next_month(month)
        cursor.execute(f"INSERT INTO {NOTICES} SELECT * FROM {PLAIN}")
        moved = cursor.rowcount
        cursor.execute(f"DELETE FROM {KEYS}")
        cursor.execute(
            f"INSERT INTO {KEYS} (uuid, received_at) SELECT uuid, received_at FROM {PLAIN}"
        )
        # Its identity sequence and the foreign key ArchivedMedia.notice go with it: a
        # partitioned table's id is unique only with received_at, so nothing may refer to
        # id alone (Django's collector still nulls ArchivedMedia.notice on a delete).
        cursor.execute(f"DROP TABLE {PLAIN} CASCADE")
        cursor.execute(f"CREATE SEQUENCE {NOTICES}_id_seq OWNED BY {NOTICES}.id")
        cursor.execute(f"SELECT setval('{NOTICES}_id_seq', %s, %s)", [max(last_id, 1), last_id > 0])
        cursor.execute(
            f"ALTER TABLE {NOTICES} ALTER COLUMN id SET DEFAULT nextval('{NOTICES}_id_seq')"
        )
        cursor.execute(
            f"ALTER TABLE {NOTICES} ADD CONSTRAINT {NOTICES}_pkey PRIMARY KEY (id, received_at)"
        )
        for definition in [*indexes, *foreign_keys, TRIGGER_FUNCTION, *TRIGGERS]:
            cursor.execute(definition)
    create_ahead(conn, now=now)
    logger.info("Partitioned the notices table by month (%s rows moved)", moved)
    return int(moved)


def _index_definitions(cursor: object) -> list[str]:
    """The plain table's indexes but its primary key and the unique uuid (the key table
    has it), as statements that recreate them on the partitioned table."""
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = to_regclass(%s) AND NOT i.indisprimary AND NOT i.indisunique",
        [NOTICES],
    )
    return [str(row[0]) for row in cursor.fetchall()]  # type: ignore[attr-defined]


def _outgoing_foreign_keys(cursor: object) -> list[str]:
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'f'",
        [NOTICES],
    )
    return [
        f"ALTER TABLE {NOTICES} ADD CONSTRAINT {name} {definition}"
        for name, definition in cursor.fetchall()  # type: ignore[attr-defined]
    ]


def uuid_filter(uuids: list[str]) -> dict[str, object]:
    """ORM filters that find the notices of ``uuids``: through their keys when notices are
    partitioned (no partition has an index on uuid), else by uuid."""
    if not enabled(notice_connection()):
        return {"uuid__in": uuids}
    return {
        "uuid__in": uuids,
        "received_at__in": NoticeKey.objects.filter(uuid__in=uuids).values("received_at"),
    }
