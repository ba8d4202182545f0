"""Counts kept per hour for the dashboard (``rollups``), an index on the tasks'
``completed_at`` to count the tasks that finished in an hour, and a partial one to count
the open and expired tasks of a week per bizType, and one on the failed tasks alone (the
admin's list of them counts and dates them through it). On PostgreSQL the indexes are
built ``CONCURRENTLY`` (writes go on meanwhile), so the migration is not one transaction."""

from typing import Any

from django.db import migrations, models


class AddIndexConcurrently(migrations.AddIndex):
    """``AddIndex``, built ``CONCURRENTLY`` on PostgreSQL (and again harmlessly if a run
    stopped halfway)."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        sql = str(self.index.create_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(sql.replace("CONCURRENTLY", "CONCURRENTLY IF NOT EXISTS", 1))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor != "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {self.index.name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("topview_callbacks", "0008_index_diet"),
    ]

    operations = [
        migrations.CreateModel(
            name="CreditHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField(verbose_name="hour")),
                ("minutes", models.PositiveSmallIntegerField(default=60, verbose_name="minutes")),
                ("account", models.CharField(max_length=64, verbose_name="account")),
                (
                    "credits",
                    models.DecimalField(decimal_places=4, max_digits=20, verbose_name="credits"),
                ),
            ],
            options={
                "db_table": "topview_callbacks_rollup_credits",
            },
        ),
        migrations.CreateModel(
            name="NoticeHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField(verbose_name="hour")),
                ("minutes", models.PositiveSmallIntegerField(default=60, verbose_name="minutes")),
                ("state", models.CharField(max_length=16, verbose_name="state")),
                ("count", models.PositiveBigIntegerField(verbose_name="count")),
            ],
            options={
                "db_table": "topview_callbacks_rollup_notices",
            },
        ),
        migrations.CreateModel(
            name="RollupHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField(verbose_name="hour")),
                ("minutes", models.PositiveSmallIntegerField(default=60, verbose_name="minutes")),
                (
                    "due",
                    models.PositiveIntegerField(default=0, verbose_name="due notices when counted"),
                ),
                ("counted_at", models.DateTimeField(auto_now=True, verbose_name="counted at")),
            ],
            options={
                "verbose_name": "rollup hour",
                "verbose_name_plural": "rollup hours",
                "db_table": "topview_callbacks_rollup_hour",
            },
        ),
        migrations.CreateModel(
            name="TaskHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hour", models.DateTimeField(verbose_name="hour")),
                ("minutes", models.PositiveSmallIntegerField(default=60, verbose_name="minutes")),
                ("biz_type", models.CharField(max_length=64, verbose_name="bizType")),
                ("status", models.CharField(max_length=16, verbose_name="status")),
                ("count", models.PositiveBigIntegerField(verbose_name="count")),
                ("buckets", models.JSONField(default=dict, verbose_name="turnaround buckets")),
            ],
            options={
                "db_table": "topview_callbacks_rollup_tasks",
            },
        ),
        AddIndexConcurrently(
            model_name="submittedtask",
            index=models.Index(fields=["completed_at"], name="topview_task_completed"),
        ),
        AddIndexConcurrently(
            model_name="submittedtask",
            index=models.Index(
                condition=models.Q(("status__in", ("submitted", "running", "expired"))),
                fields=["status", "biz_type", "submitted_at"],
                name="topview_task_unfinished",
            ),
        ),
        AddIndexConcurrently(
            model_name="submittedtask",
            index=models.Index(
                condition=models.Q(("status", "fail")),
                fields=["submitted_at"],
                name="topview_task_failed",
            ),
        ),
        migrations.AddConstraint(
            model_name="credithour",
            constraint=models.UniqueConstraint(
                fields=("hour", "minutes", "account"), name="topview_credithour_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="noticehour",
            constraint=models.UniqueConstraint(
                fields=("hour", "minutes", "state"), name="topview_noticehour_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="rolluphour",
            constraint=models.UniqueConstraint(
                fields=("hour", "minutes"), name="topview_rolluphour_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="taskhour",
            constraint=models.UniqueConstraint(
                fields=("hour", "minutes", "biz_type", "status"), name="topview_taskhour_unique"
            ),
        ),
    ]
