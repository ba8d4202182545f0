"""Only the indexes a query needs (docs/capacity.md has the measurements).

Notices lose the ``varchar_pattern_ops`` index Django adds beside a ``unique=True``
``CharField`` (uuid is unique through a ``UniqueConstraint`` now), ``(biz_type, task_id)``
(``(biz_type)`` serves the admin's filter, ``(task_id)`` the lookups) and the full
``(state, received_at)`` (partial now: processed notices are left out); the notices an
attempt may start on get a small partial index of their own. Tasks lose
``(task_id)``: the unique constraint leads with it instead.

On PostgreSQL the migration is not one transaction: indexes are built and dropped
``CONCURRENTLY``, so inserts go on while it runs on a big table, and the unique index on
uuid is renamed, not rebuilt. Every step can be run again if the migration stops halfway.
Other databases run the usual operations.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.migrations.operations.base import Operation

NOTICES = "topview_callbacks_notice"
TASKS = "topview_callbacks_submittedtask"

UNSETTLED = models.Index(
    fields=["state", "received_at"],
    name="topview_notice_unsettled",
    condition=~models.Q(state="processed"),
)
DUE = models.Index(
    fields=["received_at"],
    name="topview_notice_due",
    condition=models.Q(state="pending") | models.Q(state="failed", next_attempt_at__isnull=False),
)
NOTICE_BIZ_TYPE = models.Index(fields=["biz_type"], name="topview_notice_biz_type")
TASK_BIZ_TYPE = models.Index(fields=["biz_type"], name="topview_task_biz_type")
NOTICE_STATE = models.Index(fields=["state", "received_at"], name="topview_notice_state")
NOTICE_TASK = models.Index(fields=["biz_type", "task_id"], name="topview_notice_task")
TASK_TASK_ID = models.Index(fields=["task_id"], name="topview_task_task_id")
UNIQUE_UUID = models.UniqueConstraint(fields=["uuid"], name="topview_notice_unique_uuid")
OLD_UNIQUE_TASK = models.UniqueConstraint(
    fields=["biz_type", "task_id"], name="topview_task_unique_biz_type_task_id"
)
UNIQUE_TASK = models.UniqueConstraint(
    fields=["task_id", "biz_type"], name="topview_task_unique_task_id_biz_type"
)

OPERATIONS = [
    migrations.AlterField(
        model_name="notice",
        name="uuid",
        field=models.CharField(max_length=128, verbose_name="uuid"),
    ),
    migrations.AddConstraint(model_name="notice", constraint=UNIQUE_UUID),
    migrations.AddIndex(model_name="notice", index=UNSETTLED),
    migrations.AddIndex(model_name="notice", index=DUE),
    migrations.RemoveIndex(model_name="notice", name=NOTICE_STATE.name),
    migrations.AddIndex(model_name="notice", index=NOTICE_BIZ_TYPE),
    migrations.RemoveIndex(model_name="notice", name=NOTICE_TASK.name),
    migrations.AddConstraint(model_name="submittedtask", constraint=UNIQUE_TASK),
    migrations.RemoveConstraint(model_name="submittedtask", name=OLD_UNIQUE_TASK.name),
    migrations.AddIndex(model_name="submittedtask", index=TASK_BIZ_TYPE),
    migrations.RemoveIndex(model_name="submittedtask", name=TASK_TASK_ID.name),
]


def _one(schema_editor: Any, sql: str, params: list[Any]) -> Any:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def _uuid_constraint(schema_editor: Any) -> str | None:
    """The name of the unique constraint on the notices' uuid alone, whatever it is."""
    name = _one(
        schema_editor,
        "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
        "AND array_length(c.conkey, 1) = 1 AND a.attname = 'uuid'",
        [NOTICES],
    )
    return None if name is None else str(name)


def _create(schema_editor: Any, model: Any, index: models.Index) -> None:
    sql = str(index.create_sql(model, schema_editor, concurrently=True))
    schema_editor.execute(sql.replace("CONCURRENTLY", "CONCURRENTLY IF NOT EXISTS", 1))


def _unique(schema_editor: Any, table: str, name: str, columns: str) -> None:
    """A unique constraint from an index built CONCURRENTLY (writes go on meanwhile)."""
    schema_editor.execute(
        f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({columns})"
    )
    if not _one(schema_editor, "SELECT 1 FROM pg_constraint WHERE conname = %s", [name]):
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"
        )


def _drop(schema_editor: Any, name: str) -> None:
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def postgresql_forwards(schema_editor: Any, from_state: Any, to_state: Any) -> None:
    notice = to_state.apps.get_model("topview_callbacks", "notice")
    task = to_state.apps.get_model("topview_callbacks", "submittedtask")
    _create(schema_editor, notice, UNSETTLED)
    _create(schema_editor, notice, DUE)
    _create(schema_editor, notice, NOTICE_BIZ_TYPE)
    _unique(schema_editor, TASKS, UNIQUE_TASK.name, "task_id, biz_type")
    _create(schema_editor, task, TASK_BIZ_TYPE)
    # ON CONFLICT (biz_type, task_id) infers the new constraint as it did the old one.
    schema_editor.execute(f"ALTER TABLE {TASKS} DROP CONSTRAINT IF EXISTS {OLD_UNIQUE_TASK.name}")
    for name in (NOTICE_STATE.name, NOTICE_TASK.name, TASK_TASK_ID.name):
        _drop(schema_editor, name)
    current = _uuid_constraint(schema_editor)
    if current is not None and current != UNIQUE_UUID.name:
        schema_editor.execute(
            f"ALTER TABLE {NOTICES} RENAME CONSTRAINT {current} TO {UNIQUE_UUID.name}"
        )
    like = schema_editor._create_index_name(NOTICES, ["uuid"], suffix="_like")
    _drop(schema_editor, like)


def postgresql_backwards(schema_editor: Any, from_state: Any, to_state: Any) -> None:
    notice = to_state.apps.get_model("topview_callbacks", "notice")
    task = to_state.apps.get_model("topview_callbacks", "submittedtask")
    schema_editor.execute(
        f"ALTER TABLE {NOTICES} RENAME CONSTRAINT {UNIQUE_UUID.name} TO {NOTICES}_uuid_key"
    )
    field = notice._meta.get_field("uuid")
    schema_editor.execute(
        str(schema_editor._create_like_index_sql(notice, field)).replace(
            "CREATE INDEX", "CREATE INDEX CONCURRENTLY IF NOT EXISTS", 1
        )
    )
    _create(schema_editor, notice, NOTICE_STATE)
    _create(schema_editor, notice, NOTICE_TASK)
    _create(schema_editor, task, TASK_TASK_ID)
    _unique(schema_editor, TASKS, OLD_UNIQUE_TASK.name, "biz_type, task_id")
    schema_editor.execute(f"ALTER TABLE {TASKS} DROP CONSTRAINT IF EXISTS {UNIQUE_TASK.name}")
    for name in (UNSETTLED.name, DUE.name, NOTICE_BIZ_TYPE.name, TASK_BIZ_TYPE.name):
        _drop(schema_editor, name)


class IndexDiet(Operation):
    """``OPERATIONS`` for the model state and on most databases; on PostgreSQL, the
    same end written by hand, without locking out writes for the length of a build."""

    reversible = True

    def state_forwards(self, app_label: str, state: Any) -> None:
        for operation in OPERATIONS:
            operation.state_forwards(app_label, state)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            postgresql_forwards(schema_editor, from_state, to_state)
            return
        for operation in OPERATIONS:  # as SeparateDatabaseAndState steps through them
            state = from_state.clone()
            operation.state_forwards(app_label, state)
            operation.database_forwards(app_label, schema_editor, from_state, state)
            from_state = state

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            postgresql_backwards(schema_editor, from_state, to_state)
            return
        states = [to_state]
        for operation in OPERATIONS[:-1]:
            state = states[-1].clone()
            operation.state_forwards(app_label, state)
            states.append(state)
        for operation, before in reversed(list(zip(OPERATIONS, states, strict=True))):
            after = before.clone()
            operation.state_forwards(app_label, after)
            operation.database_backwards(app_label, schema_editor, after, before)

    def describe(self) -> str:
        return "Drop the indexes no query needs (topview_callbacks' index diet)"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__name__, [], {})


class Migration(migrations.Migration):
    # PostgreSQL builds and drops the indexes CONCURRENTLY, which no transaction may hold.
    atomic = False

    dependencies = [
        ("topview_callbacks", "0007_outbound_queue"),
    ]

    operations = [IndexDiet()]
