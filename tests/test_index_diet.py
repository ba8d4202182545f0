"""The indexes the notice and task tables carry (migration 0008): only what a query needs,
and every query that needs one still finds it. In one plain notices table: the partitioned
layout's are in tests/test_partitions.py."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Q
from django.utils import timezone

from topview_callbacks.models import Notice, SubmittedTask
from topview_callbacks.processing import claims, sql
from topview_callbacks.sweeping import stuck_notices

pytestmark = pytest.mark.skipif(
    os.environ.get("TOPVIEW_TEST_PARTITION_NOTICES") == "1",
    reason="the plain notices table's indexes (notices are partitioned in this run)",
)

DAY = timedelta(days=1)
NOTICES = Notice._meta.db_table
TASKS = SubmittedTask._meta.db_table


def index_columns(table: str) -> dict[str, tuple[list[str], bool]]:
    """Every index of ``table``: its columns and whether it is unique."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return {
        name: (list(info["columns"]), bool(info["unique"]))
        for name, info in found.items()
        if info["index"] or info["unique"]
    }


@pytest.mark.django_db
def test_a_notice_has_one_index_per_query_family_and_none_on_uuid_for_like() -> None:
    indexes = index_columns(NOTICES)
    by_columns = sorted(columns for columns, _unique in indexes.values() if columns != ["id"])
    assert by_columns == [
        ["biz_type"],
        ["received_at"],
        ["received_at"],
        ["state", "received_at"],
        ["submitted_task_id"],
        ["task_id"],
        ["uuid"],
    ]
    assert indexes["topview_notice_unique_uuid"] == (["uuid"], True)
    assert not [name for name in indexes if name.endswith("_like")]


@pytest.mark.django_db
def test_a_task_is_unique_by_task_id_then_biz_type_with_no_second_task_id_index() -> None:
    indexes = index_columns(TASKS)
    assert indexes["topview_task_unique_task_id_biz_type"] == (["task_id", "biz_type"], True)
    assert sorted(columns for columns, _unique in indexes.values() if columns != ["id"]) == [
        ["account", "status", "id"],  # the outbound queue (issue 20) and the ones below
        ["biz_type"],
        ["completed_at"],  # the dashboard's rollups count the tasks finished in an hour
        ["owner_content_type_id", "owner_object_id"],
        ["reference"],
        ["status", "biz_type", "submitted_at"],  # the dashboard's open and expired tasks
        ["status", "next_poll_at"],
        ["submission"],
        ["submitted_at"],
        ["submitted_at"],  # failed tasks only: the admin's list of them
        ["task_id", "biz_type"],
    ]


@pytest.fixture
def rows() -> None:
    """A few hundred tasks and notices of a dozen bizTypes, analyzed, so that the
    planner's statistics look like a real table's."""
    kinds = [f"KIND_{i}" for i in range(12)]
    tasks = SubmittedTask.objects.bulk_create(
        SubmittedTask(biz_type=kinds[i % 12], task_id=f"t{i}", status="success") for i in range(600)
    )
    Notice.objects.bulk_create(
        Notice(
            uuid=f"u{i}",
            biz_type=task.biz_type,
            task_id=task.task_id,
            status="success",
            state="failed" if i % 50 == 0 else "processed",
            submitted_task=task,
        )
        for i, task in enumerate(tasks)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {NOTICES}")
        cursor.execute(f"ANALYZE {TASKS}")


def plan(query: str, params: Any = None) -> str:
    """PostgreSQL's plan for ``query`` with sequential scans priced out (the test tables
    are small: the question is whether an index *can* serve it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {query}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("rows")
def test_the_claim_selector_reads_the_partial_index_of_due_notices() -> None:
    now = timezone.now()
    text = sql.statement(sql.START_ATTEMPTS, connection.alias)
    params = {
        "now": now,
        "reclaim_before": now,
        "claim": "x",
        "max_attempts": 5,
        "abandoned": "",
        "limit": 50,
    }
    assert "topview_notice_due" in plan(text, params)
    # The statement's own text, as claims.start runs it, with the one-notice narrowing.
    narrowed = sql.statement(sql.START_ATTEMPTS, connection.alias, " AND id = %(notice_id)s")
    assert "Index" in plan(narrowed, {**params, "notice_id": 1})


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    "queryset",
    [
        lambda: Notice.objects.filter(state="pending").order_by("received_at")[:1],
        lambda: Notice.objects.filter(state="failed", received_at__gte=timezone.now() - DAY),
        lambda: Notice.objects.filter(
            state__in=("pending", "failed"), next_attempt_at__isnull=False
        ),
        lambda: Notice.objects.filter(state="duplicate").order_by("-received_at", "-id")[:50],
    ],
    ids=["oldest pending", "failed in 24 h", "retrying", "state filter"],
)
@pytest.mark.usefixtures("rows")
def test_health_and_the_state_filter_read_a_partial_index(queryset: Any) -> None:
    query, params = queryset().query.sql_with_params()
    found = plan(query, params)
    assert "topview_notice_unsettled" in found or "topview_notice_due" in found


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("rows")
def test_the_failed_tasks_list_counts_and_dates_them_from_their_own_index() -> None:
    # With every task succeeded but a few, the changelist's "more than 10,000?" probe and
    # its date hierarchy's MIN(submitted_at) would read past the succeeded ones first.
    SubmittedTask.objects.filter(task_id__in=["t1", "t2"]).update(status="fail")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TASKS}")
    failed = SubmittedTask.objects.filter(status="fail")
    for queryset in (
        failed.order_by().values("pk")[10000:10001],
        failed.order_by("submitted_at").values("submitted_at")[:1],
    ):
        query, params = queryset.query.sql_with_params()
        assert "topview_task_failed" in plan(query, params)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("rows")
def test_the_sweep_and_the_retry_gauge_read_the_due_notices_only() -> None:
    for queryset in (
        stuck_notices(timedelta(seconds=60)),
        Notice.objects.filter(
            Q(state="pending", next_attempt_at__isnull=False)
            | Q(state="failed", next_attempt_at__isnull=False)
        ),
    ):
        query, params = queryset.query.sql_with_params()
        assert "topview_notice_due" in plan(query, params)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("rows")
def test_an_attempt_locks_its_notices_by_primary_key(django_assert_num_queries: Any) -> None:
    notice = Notice.objects.create(uuid="due", biz_type="X", task_id="due", status="success")
    claim = claims.start(connection, limit=1, notice_id=notice.pk)
    assert claim.notice_ids == [notice.pk]
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            locked = claims.lock(connection, claim)
        finally:
            cursor.execute("ROLLBACK")
    assert [n.pk for n in locked] == [notice.pk]
    text = sql.statement(sql.LOCK_CLAIMED, connection.alias, " AND id IN (%(id_0)s)")
    assert "pkey" in plan(text, {"claim": claim.token, "id_0": notice.pk})


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "index"),
    [
        (sql.FIND_NOTICE.replace("{notices}", NOTICES), "topview_notice_unique_uuid"),
        (f"SELECT id FROM {NOTICES} WHERE task_id = %(uuid)s", "topview_notice_task_id"),
        (
            f"SELECT min(biz_type) FROM {NOTICES} WHERE biz_type > %(uuid)s",
            "topview_notice_biz_type",
        ),
        (
            f"SELECT id FROM {TASKS} WHERE task_id = %(uuid)s",
            "topview_task_unique_task_id_biz_type",
        ),
        (
            sql.CLASSIFY.replace("{tasks}", TASKS)
            .replace("%(biz_type)s", "'x'")
            .replace("%(task_id)s", "%(uuid)s"),
            "topview_task_unique_task_id_biz_type",
        ),
        (f"SELECT min(biz_type) FROM {TASKS} WHERE biz_type > %(uuid)s", "topview_task_biz_type"),
    ],
    ids=["uuid", "notice task id", "notice bizTypes", "task id", "classify", "task bizTypes"],
)
@pytest.mark.usefixtures("rows")
def test_each_lookup_has_its_index(query: str, index: str) -> None:
    assert index in plan(query, {"uuid": "a"})


@pytest.mark.django_db(transaction=True)
def test_the_migration_goes_back_to_the_old_indexes_and_forward_again() -> None:
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("topview_callbacks")
    try:
        executor.migrate([("topview_callbacks", "0006_archived_media_confirmation")])
        old = index_columns(NOTICES)
        if connection.vendor == "postgresql":
            assert any(name.endswith("_like") for name in old)
        assert ["biz_type", "task_id"] in [columns for columns, _unique in old.values()]
        assert ["task_id"] in [columns for columns, _u in index_columns(TASKS).values()]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert "topview_notice_unique_uuid" in index_columns(NOTICES)
    assert not [name for name in index_columns(NOTICES) if name.endswith("_like")]


@pytest.mark.django_db
def test_a_task_recorded_final_without_owner_or_reference_is_in_no_partial_index() -> None:
    # Most tasks are created final from their callback, by submit() without an owner or a
    # reference: recording their outcome writes no entry in these four.
    names = (
        "topview_task_owner",
        "topview_task_reference",
        "topview_task_poll_due",
        "topview_task_account_status",
    )
    with connection.cursor() as cursor:
        catalog = (
            "SELECT indexdef FROM pg_indexes WHERE indexname IN (%s, %s, %s, %s)"
            if connection.vendor == "postgresql"
            else "SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN (%s, %s, %s, %s)"
        )
        cursor.execute(catalog, names)
        definitions = [row[0] for row in cursor.fetchall()]
    assert len(definitions) == 4
    assert all(" WHERE " in definition for definition in definitions), definitions
