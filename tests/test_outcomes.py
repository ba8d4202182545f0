"""outcomes.py: the statements each path costs on PostgreSQL, and what a crash leaves behind.

Counted with ``CaptureQueriesContext`` around the whole request (or the worker's call), the
``notice_stored`` signal connected or not. The guarantees themselves are tested through the
public paths in test_processing, test_concurrency, test_security and test_views, which run
on PostgreSQL (where this path is taken) as well as on SQLite.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from topview_callbacks import outcomes, processing, signals, sweeping
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
BASE = {"UID": "test-uid-NsDAaOPF4jLu", "API_KEY": "sk-test-key"}


def topview(**values: Any) -> Any:
    return override_settings(TOPVIEW_CALLBACKS={**BASE, **values})


def statements(action: Any) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        action()
    return [query["sql"] for query in queries.captured_queries]


def deliver(payload: dict[str, Any]) -> None:
    assert deliver_notice(payload).status_code == 200


def test_inline_a_new_notice_of_a_new_task_costs_two_statements(record_signal: Any) -> None:
    fired = record_signal()
    changed = record_signal(signals.task_status_changed)
    payload = notice_payload("VOICE_CLONE")
    with topview():
        sql = statements(lambda: deliver(payload))
    assert [s.split()[0] for s in sql] == ["WITH", "UPDATE"]  # store + record; processed
    notice = Notice.objects.get()
    assert (notice.state, notice.attempts) == (NoticeState.PROCESSED, 1)
    task = SubmittedTask.objects.get()
    assert (notice.submitted_task, task.status, task.notice_uuid) == (task, "success", notice.uuid)
    assert len(fired.calls) == 1
    assert fired.calls[0]["task"].pk == task.pk
    assert fired.calls[0]["notice"].result == notice.result
    assert [(c["old_status"], c["new_status"]) for c in changed.calls] == [("running", "success")]


def test_inline_a_task_submitted_through_the_client_costs_two_statements(
    record_signal: Any,
) -> None:
    fired = record_signal()
    changed = record_signal(signals.task_status_changed)
    task = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW",
        task_id="t-known",
        notice_uuid="n-known",
        request_payload={"productLink": "https://shop.test/p"},
    )
    with topview():
        sql = statements(lambda: deliver(notice_payload(task_id="t-known", uuid="n-known")))
    assert len(sql) == 2
    task.refresh_from_db()
    assert (task.status, task.next_poll_at) == (TaskStatus.SUCCESS, None)
    sent = fired.calls[0]["task"]
    assert (sent.pk, sent.request_payload) == (task.pk, {"productLink": "https://shop.test/p"})
    assert [(c["old_status"], c["new_status"]) for c in changed.calls] == [("submitted", "success")]


def test_inline_a_repeated_uuid_costs_one_statement_and_touches_no_task(
    record_signal: Any,
) -> None:
    fired = record_signal()
    payload = notice_payload()
    with topview():
        deliver(payload)
        before = SubmittedTask.objects.get().updated_at
        assert len(statements(lambda: deliver(payload))) == 1
    assert SubmittedTask.objects.get().updated_at == before
    assert Notice.objects.get().delivery_count == 2
    assert len(fired.calls) == 1


def test_inline_another_uuid_for_a_finished_task_is_a_duplicate(record_signal: Any) -> None:
    fired = record_signal()
    with topview():
        deliver(notice_payload(task_id="t-1", status="fail"))
        sql = statements(lambda: deliver(notice_payload(task_id="t-1")))
    # The statement records nothing; the portable path marks it duplicate.
    assert len(sql) <= 6, sql
    late = Notice.objects.get(status="success")
    assert (late.state, late.submitted_task) == (NoticeState.DUPLICATE, SubmittedTask.objects.get())
    assert SubmittedTask.objects.get().status == TaskStatus.FAIL
    assert len(fired.calls) == 1


def test_async_processed_mark_is_one_statement_too(record_signal: Any) -> None:
    fired = record_signal()
    with topview(ASYNC_PROCESSED_MARK=True):
        sql = statements(lambda: deliver(notice_payload()))
    assert len(sql) == 2 and "synchronous_commit" in sql[1]
    assert Notice.objects.get().state == NoticeState.PROCESSED
    assert len(fired.calls) == 1
    with connection.cursor() as cursor:  # set for that statement's transaction only
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_a_worker_claims_records_and_marks_in_two_statements(record_signal: Any) -> None:
    fired = record_signal()
    with topview(PROCESSING="celery"):
        sql = statements(lambda: deliver(notice_payload()))  # queues (on commit) nothing here
    assert len(sql) == 1
    notice = Notice.objects.get()
    done: list[Any] = []
    assert len(statements(lambda: done.append(processing.process_notice(notice.pk)))) == 2
    assert done[0].state == NoticeState.PROCESSED
    assert done[0].submitted_task == SubmittedTask.objects.get(status="success")
    assert len(fired.calls) == 1


def test_a_crash_after_the_store_leaves_a_notice_the_sweep_finishes_once(
    record_signal: Any,
) -> None:
    # The request stored, claimed and recorded the notice, then died before its signals.
    fired = record_signal()
    changed = record_signal(signals.task_status_changed)
    with topview():
        stored = outcomes.store_claimed(
            uuid="u-crash", biz_type="VOICE_CLONE", task_id="t-crash", status="success"
        )
    assert stored.created and stored.claimed is not None
    notice = Notice.objects.get()
    assert (notice.state, notice.submitted_task_id) == (
        NoticeState.PROCESSING,
        stored.claimed.notice.submitted_task_id,
    )
    with topview():
        assert list(sweeping.stuck_notices(timedelta(0))) == [notice]
        assert sweeping.sweep(older_than=timedelta(0)) == 1
    notice.refresh_from_db()
    # Linked to its task by the same statement: a re-run is not a duplicate of itself.
    assert (notice.state, notice.attempts) == (NoticeState.PROCESSED, 2)
    assert len(fired.calls) == 1
    assert changed.calls == []  # the status changed in the first run, which died
    assert SubmittedTask.objects.get().status == TaskStatus.SUCCESS


def test_a_crash_after_a_workers_claim_leaves_a_notice_the_sweep_finishes_once(
    record_signal: Any,
) -> None:
    fired = record_signal()
    with topview(PROCESSING="manual"):
        deliver(notice_payload(task_id="t-w"))
        notice = Notice.objects.get()
        condition = Notice.objects.claimable_sql(connection, ["pending"], None, None)
        assert condition is not None
        assert outcomes.claim_and_record(notice.pk, *condition) is not None  # then it died
        assert sweeping.sweep(older_than=timedelta(0)) == 1
    notice.refresh_from_db()
    assert (notice.state, notice.attempts) == (NoticeState.PROCESSED, 2)
    assert len(fired.calls) == 1


def test_prepared_statements_are_prepared_once_per_connection(record_signal: Any) -> None:
    fired = record_signal()
    with topview(PREPARED_STATEMENTS=True):
        for _ in range(3):
            assert len(statements(lambda: deliver(notice_payload()))) == 2
        with topview(PROCESSING="manual", PREPARED_STATEMENTS=True):
            deliver(notice_payload())
        assert len(processing_statements()) == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql")
        assert cursor.fetchone()[0] == 3  # store; claim-and-record; the mark (shared)
    assert len(fired.calls) == 4
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PROCESSED}


def processing_statements() -> list[str]:
    notice = Notice.objects.get(state=NoticeState.PENDING)
    return statements(lambda: processing.process_notice(notice.pk))
