"""What a notice costs the database, per path: statements and transactions (commits).

The performance contract of the processing core, counted rather than timed: inline on
PostgreSQL is one function call in one transaction; storing for a queue is one autocommitted
INSERT; a queue's attempt at a batch is two transactions whatever its size (the claim, then
the attempt), one statement a notice and their marks in one batch. A change that adds a
round trip fails here first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from tests.support.settings import BEHIND_PGBOUNCER, ON_POSTGRES
from topview_callbacks.models import SubmittedTask
from topview_callbacks.processing import process_due, sql
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Costs:
    """Statements sent (their first word) and transactions committed while counting."""

    statements: list[str] = field(default_factory=list)
    transactions: int = 0


@pytest.fixture
def count(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], Costs]:
    conn = connections["default"]
    counting: list[Costs] = []
    commit = type(conn)._commit

    def counted_commit(self: Any) -> None:
        if counting:
            counting[-1].transactions += 1
        commit(self)

    monkeypatch.setattr(type(conn), "_commit", counted_commit)

    def run(action: Callable[[], Any]) -> Costs:
        costs = Costs()

        def execute(run_sql: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            if sql != "BEGIN":  # SQLite's backend opens its transactions with a statement
                costs.statements.append(sql.split(None, 1)[0].upper())
                if not conn.in_atomic_block:
                    costs.transactions += 1  # autocommitted: a transaction of its own
            return run_sql(sql, params, many, context)

        counting.append(costs)
        try:
            with conn.execute_wrapper(execute):
                action()
        finally:
            counting.pop()
        return costs

    return run


@pytest.fixture
def processing(settings: Any) -> Callable[[str], None]:
    def use(mode: str) -> None:
        settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": mode}

    return use


def test_inline_is_one_transaction_and_on_postgresql_one_statement(
    count: Callable[[Callable[[], Any]], Costs],
) -> None:
    body = notice_payload("VOICE_CLONE")
    new = count(lambda: deliver_notice(body))
    repeated = count(lambda: deliver_notice(body))
    assert new.transactions == repeated.transactions == 1
    if ON_POSTGRES:
        assert new.statements == repeated.statements == ["SELECT"]  # the function
    else:  # the same statements, one by one: find, record the outcome, store
        assert new.statements == ["SELECT", "INSERT", "INSERT"]
        assert repeated.statements == ["SELECT"]


def test_storing_for_a_queue_is_one_autocommitted_insert(
    count: Callable[[Callable[[], Any]], Costs], processing: Callable[[str], None]
) -> None:
    processing("manual")
    body = notice_payload("VOICE_CLONE")
    # Partitioned notices (PARTITION_NOTICES): the same one statement writes the key first.
    store = "WITH" if sql.keyed(connections["default"]) else "INSERT"
    for costs in (count(lambda: deliver_notice(body)), count(lambda: deliver_notice(body))):
        assert (costs.statements, costs.transactions) == ([store], 1)


@pytest.mark.parametrize("notices", [1, 5])
def test_an_attempt_at_a_batch_is_two_transactions_and_one_statement_a_notice_plus_the_marks(
    count: Callable[[Callable[[], Any]], Costs],
    processing: Callable[[str], None],
    notices: int,
) -> None:
    processing("manual")
    for _ in range(notices):
        deliver_notice(notice_payload("VOICE_CLONE"))
    costs = count(lambda: process_due(limit=10))
    # The claim (counts the attempts, autocommitted), then one transaction: lock the
    # batch, record each notice's outcome, then finish them all in one executemany (with
    # psycopg 3 one round trip, pipelined).
    assert costs.transactions == 2
    assert costs.statements == ["UPDATE", "SELECT", *["INSERT"] * notices, "UPDATE"]


@pytest.mark.parametrize("notices", [1, 2, 5])
def test_a_batch_of_several_sends_its_recordings_in_one_pipeline(
    processing: Callable[[str], None], notices: int
) -> None:
    # With psycopg 3, a batch's RECORD_OUTCOME statements go to the server together, as
    # their marks do: one round trip. A batch of one needs no pipeline; SQLite and psycopg2
    # have none.
    conn = connections["default"]
    processing("manual")
    for _ in range(notices):
        deliver_notice(notice_payload("VOICE_CLONE"))
    pipelined: list[bool] = []

    def note(run_sql: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("INSERT"):  # RECORD_OUTCOME
            status = getattr(getattr(conn.connection, "pgconn", None), "pipeline_status", 0)
            pipelined.append(bool(status))
        return run_sql(sql, params, many, context)

    with conn.execute_wrapper(note):
        assert len(process_due(limit=10).notices) == notices
    together = notices > 1 and hasattr(conn.connection, "pipeline")
    assert pipelined == [together] * notices


# --- pinned down by mutation testing on PostgreSQL (docs/mutation-testing.md) ----------------


def test_the_inline_statement_shows_in_the_captured_queries() -> None:
    with CaptureQueriesContext(connections["default"]) as captured:
        assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
    sent = " ".join(query["sql"] for query in captured.captured_queries)
    assert ("topview_callbacks_receive" in sent) is ON_POSTGRES
    assert "topview_callbacks_notice" in sent or ON_POSTGRES


def test_a_callback_naming_its_submission_adds_one_autocommitted_statement(
    count: Callable[[Callable[[], Any]], Costs],
) -> None:
    # Every callback of an enqueued task carries its submission's marker; the look for a
    # submission still sending or uncertain is one autocommitted UPDATE (one round trip),
    # not a transaction of its own (BEGIN, UPDATE, COMMIT).
    conn = connections["default"]
    in_transaction: list[bool] = []

    def note(run_sql: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.upper().startswith("UPDATE"):
            in_transaction.append(conn.in_atomic_block)
        return run_sql(sql, params, many, context)

    body = notice_payload("VOICE_CLONE")
    with conn.execute_wrapper(note):
        marked = count(lambda: deliver_notice(body, path="/topview/notice/?topview_submission=abc"))
    assert in_transaction == [False]
    assert marked.transactions == 2  # the UPDATE, then the notice's own transaction
    if ON_POSTGRES:
        assert marked.statements == ["UPDATE", "SELECT"]
    else:
        assert marked.statements == ["UPDATE", "SELECT", "INSERT", "INSERT"]


def test_inline_queries_are_not_logged_unless_asked() -> None:
    # DEBUG off and no capture: nothing goes to the connection's query log (memory and
    # time that a production server does not spend).
    conn = connections["default"]
    conn.queries_log.clear()
    assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
    assert list(conn.queries_log) == []


@pytest.mark.postgres
@pytest.mark.skipif(BEHIND_PGBOUNCER, reason="PgBouncer's client pid is not a backend's")
def test_the_inline_call_sends_its_values_apart_from_its_text() -> None:
    # psycopg neither quotes the values into the statement nor PostgreSQL parses them back
    # out of it (docs/benchmark.md): the server's view of the call has $n placeholders.
    import psycopg

    from topview_callbacks import signals

    conn = connections["default"]
    conn.ensure_connection()
    pid = conn.connection.info.backend_pid
    seen: list[str] = []

    def look(sender: Any, **kwargs: Any) -> None:  # runs right after the call, in its transaction
        params = conn.get_connection_params()
        with psycopg.connect(
            host=params["host"], port=params["port"], user=params["user"], dbname=params["dbname"]
        ) as side:
            row = side.execute(
                "SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
            seen.append(row[0])

    signals.task_outcome.connect(look, weak=False, dispatch_uid="look")
    try:
        payload = notice_payload("VOICE_CLONE")
        assert deliver_notice(payload).status_code == 200
    finally:
        signals.task_outcome.disconnect(dispatch_uid="look")
    [query] = seen
    assert "topview_callbacks_receive($1, $2" in query
    assert payload["uuid"] not in query


@pytest.mark.postgres
def test_the_inline_call_keeps_one_cursor_per_connection() -> None:
    # A new psycopg cursor sets up its adapters again for the call's values and its result's
    # columns, about 50 µs of CPU a delivery (docs/benchmark.md): the call's cursor is made
    # once per database connection, and a new connection gets its own.
    conn = connections["default"]
    used: list[tuple[Any, Any]] = []

    def note(run_sql: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "topview_callbacks_receive" in sql:
            used.append((context["cursor"].cursor, conn.connection))
        return run_sql(sql, params, many, context)

    with conn.execute_wrapper(note):
        for _ in range(3):
            assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
        conn.close()
        assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
    (first, on), *again, (after, reconnected) = used
    assert [cursor is first for cursor, _raw in again] == [True, True]
    assert reconnected is not on and after is not first and after.connection is reconnected


@pytest.mark.postgres
def test_the_call_answers_one_value_the_task_a_document_and_a_created_one_null() -> None:
    # A function called in a query's FROM costs PostgreSQL about 110,000 instructions more
    # than one called as a value, and each column of a table's result about 8,500 more; a
    # created task costs less built from what the call sent than loaded
    # (docs/benchmark.md). So the call answers one value, a JSON array whose last item is
    # the task: null for a task the notice created, and for a task that was there already
    # (submitted through the client) its row's JSON document, without the result the caller
    # holds.
    conn = connections["default"]
    sent: list[tuple[int, Any]] = []

    def note(run_sql: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        done = run_sql(sql, params, many, context)
        if "topview_callbacks_receive" in sql:
            result = context["cursor"].cursor.pgresult
            sent.append((result.nfields, json.loads(bytes(result.get_value(0, 0)))))
        return done

    SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t-known", status="running")
    with conn.execute_wrapper(note):
        for task_id in ("t-created", "t-known"):
            payload = notice_payload("VOICE_CLONE", task_id=task_id)
            assert deliver_notice(payload).status_code == 200
    (created_columns, created), (known_columns, known) = sent
    assert created_columns == known_columns == 1
    assert len(created) == len(known) == 7
    assert created[-1] is None and created[5] is True
    document = known[-1]
    assert known[5] is False
    assert document["task_id"] == "t-known" and document["status"] == "success"
    assert "submitted_at" in document and "result" not in document
