"""The notices' key table, and with ``PARTITION_NOTICES`` on PostgreSQL, the notices
partitioned by month (topview_callbacks/partitions.py).

The key table exists on every database (Django flushes and migrates it like any other);
it stays empty unless notices are partitioned. On PostgreSQL the ``varchar_pattern_ops``
index Django adds beside a ``CharField`` primary key is dropped: no query here uses
``LIKE`` on a uuid, and an index on a random key costs a page image in the WAL per notice
once the table is big. With the setting on, the plain notices table is converted (rows
copied, in one transaction); turning the setting on later, ``manage.py
topview_partition_notices`` does the same.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.utils import timezone


def partition(apps: Any, schema_editor: Any) -> None:
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    # CreateModel's indexes are deferred to the migration's end: build them now, to drop one.
    for sql in schema_editor.deferred_sql:
        schema_editor.execute(sql)
    schema_editor.deferred_sql.clear()
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'topview_callbacks_noticekey' "
            "AND indexname LIKE '%\\_like'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
    from topview_callbacks import partitions

    if partitions.enabled(conn):
        partitions.convert(conn, now=timezone.now())


class Migration(migrations.Migration):
    dependencies = [
        ("topview_callbacks", "0009_rollups"),
    ]

    operations = [
        migrations.CreateModel(
            name="NoticeKey",
            fields=[
                (
                    "uuid",
                    models.CharField(
                        max_length=128, primary_key=True, serialize=False, verbose_name="uuid"
                    ),
                ),
                ("received_at", models.DateTimeField(verbose_name="received at")),
            ],
            options={
                "verbose_name": "notice key",
                "verbose_name_plural": "notice keys",
                "default_permissions": (),
            },
        ),
        # Not reversed: a partitioned table stays partitioned (docs/operations.md).
        migrations.RunPython(partition, migrations.RunPython.noop),
    ]
