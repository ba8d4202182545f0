"""The queue of submissions: enqueue in the caller's transaction, send after commit under
MAX_UNFINISHED, busy answers wait, lost answers end uncertain, callbacks resolve them."""

from __future__ import annotations

import io
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, transaction

from tests.support.settings import ON_POSTGRES, UID, topview
from topview_callbacks import health, sending, signals
from topview_callbacks.client import Submission, TopviewClient
from topview_callbacks.models import UNFINISHED_TASK_STATUSES, SubmittedTask, TaskStatus
from topview_callbacks.processing import process_due
from topview_callbacks.testing import mock_topview

BIZ = "COMMON_TASK_IMAGE2VIDEO"
pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def markers_at(fake: Any) -> list[str]:
    """The submission marker of every task the fake accepted (from its noticeUrl)."""
    found = []
    for task in fake.tasks.values():
        url = task.params.get("noticeUrl") or ""
        found.append(url.rpartition(f"{sending.SUBMISSION_PARAM}=")[2])
    return found


def unfinished() -> int:
    return SubmittedTask.objects.filter(status__in=UNFINISHED_TASK_STATUSES).count()


def finish_all(fake: Any) -> None:
    """End every task the fake runs, successfully, and deliver their callbacks."""
    for (_biz, task_id), task in list(fake.tasks.items()):
        if not task.settled and task.finish_at is None:
            fake.finish(task_id)
    fake.deliver_callbacks()


def test_enqueue_sends_after_commit_and_never_after_a_rollback() -> None:
    owner = User.objects.create(username="owner")
    with mock_topview() as fake:
        with transaction.atomic():
            task = TopviewClient().enqueue(
                BIZ, owner=owner, reference="order-7", imageFileId="f1", prompt="a cat"
            )
            assert task.status == TaskStatus.QUEUED
            assert fake.tasks == {}  # nothing leaves before the commit
        with pytest.raises(Rollback), transaction.atomic():
            TopviewClient().enqueue(BIZ, reference="rolled-back", imageFileId="f2")
            raise Rollback
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED
    assert task.owner == owner
    assert task.reference == "order-7"
    assert markers_at(fake) == [task.submission]
    assert not SubmittedTask.objects.filter(reference="rolled-back").exists()
    (sent,) = fake.submit_bodies
    assert sent["prompt"] == "a cat"
    assert sent["noticeUrl"].startswith("https://example.com/topview/notice/?topview_submission=")
    assert list(SubmittedTask.objects.for_owner(owner)) == [task]


def test_enqueue_many_is_a_few_statements() -> None:
    from django.test.utils import CaptureQueriesContext

    submissions = [Submission({"prompt": f"p{i}"}, reference=f"r{i}") for i in range(2500)]
    with (
        topview(PROCESSING="manual"),
        CaptureQueriesContext(connection) as queries,
        transaction.atomic(),
    ):
        rows = TopviewClient().enqueue_many(BIZ, submissions)
    assert len(rows) == 2500
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    # PostgreSQL: batches of 1000; SQLite caps a statement's variables (999 before 3.32).
    assert len(inserts) == 3 if ON_POSTGRES else len(inserts) <= 2500 / 40
    assert SubmittedTask.objects.filter(status=TaskStatus.QUEUED).count() == 2500


def test_secret_parameters_are_refused() -> None:
    from topview_callbacks.exceptions import TopviewError

    with pytest.raises(TopviewError, match="api_key"):
        TopviewClient().enqueue(BIZ, api_key="oops")


def test_the_cap_holds_back_the_rest_until_outcomes_free_slots() -> None:
    with topview(MAX_UNFINISHED=3), mock_topview() as fake:
        with transaction.atomic():
            TopviewClient().enqueue_many(BIZ, [Submission({"prompt": str(i)}) for i in range(7)])
        assert len(fake.tasks) == 3
        assert SubmittedTask.objects.filter(status=TaskStatus.QUEUED).count() == 4
        finish_all(fake)  # three outcomes: three slots, the next three go
        assert len(fake.tasks) == 6
        finish_all(fake)
        finish_all(fake)
    assert SubmittedTask.objects.filter(status=TaskStatus.SUCCESS).count() == 7
    assert fake.most_unfinished == 3


def test_a_busy_answer_puts_it_back_with_a_backoff() -> None:
    with topview(PROCESSING="manual"), mock_topview() as fake:
        task = TopviewClient().enqueue(BIZ, prompt="x")
        fake.fail_next(code="4007", message="Exists unfinished task, please wait")
        report = sending.send_queued()
        assert (report.sent, report.busy) == (0, 1)
        assert report.retry_in is not None and 0 < report.retry_in <= sending.BACKOFF_SECONDS
        task.refresh_from_db()
        assert task.status == TaskStatus.QUEUED and task.send_after is not None
        assert sending.send_queued().sent == 0  # not before its time
        SubmittedTask.objects.filter(pk=task.pk).update(send_after=None)
        assert sending.send_queued().sent == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED and task.send_attempts == 2


def test_a_refused_submission_fails_with_topviews_reason(record_signal: Any) -> None:
    refused = record_signal(signals.submission_refused)
    with topview(PROCESSING="manual"), mock_topview() as fake:
        task = TopviewClient().enqueue(BIZ, prompt="x")
        fake.fail_next(code="4000", message="Request parameter error")
        assert sending.send_queued().refused == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.FAIL
    assert "4000" in task.error_message
    assert [call["task"].pk for call in refused.calls] == [task.pk]


def test_a_lost_answer_is_uncertain_and_never_resent(record_signal: Any) -> None:
    uncertain = record_signal(signals.submission_uncertain)
    with topview(PROCESSING="manual"), mock_topview() as fake:
        task = TopviewClient().enqueue(BIZ, prompt="x")
        fake.lose_answers(1)
        assert sending.send_queued().uncertain == 1
        assert sending.send_queued().sent == 0
        call_command("topview_send_queued", stdout=io.StringIO())
        assert len(fake.submit_bodies) == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.UNCERTAIN
    assert "may exist" in task.error_message
    assert len(uncertain.calls) == 1
    finding = {f.name: f for f in health.check()}["uncertain_submissions"]
    assert finding.level == health.Level.WARNING and finding.value == 1


def test_its_callback_resolves_an_uncertain_submission() -> None:
    with topview(PROCESSING="manual"), mock_topview() as fake:
        task = TopviewClient().enqueue(BIZ, reference="lost", prompt="x")
        fake.lose_answers(1)
        sending.send_queued()
        (fake_task,) = fake.tasks.values()
        fake.finish(fake_task.task_id)
        fake.deliver_callbacks()
        process_due()
    task.refresh_from_db()
    assert task.task_id == fake_task.task_id
    assert task.status == TaskStatus.SUCCESS
    assert task.cost_credit == Decimal("10")
    assert task.resolution.startswith("Resolved by its callback")


def test_resend_and_give_up_are_recorded() -> None:
    with topview(PROCESSING="manual"), mock_topview() as fake:
        first = TopviewClient().enqueue(BIZ, prompt="1")
        second = TopviewClient().enqueue(BIZ, prompt="2")
        fake.lose_answers(2)
        sending.send_queued()
        old_marker = first.submission
        assert sending.resend([first.pk], by="alice") == 1
        assert sending.give_up([second.pk], by="bob") == 1
        assert sending.send_queued().sent == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == TaskStatus.SUBMITTED and first.submission != old_marker
    assert "Resent by alice" in first.resolution
    assert second.status == TaskStatus.FAIL and "Given up by bob" in second.resolution
    assert len(fake.submit_bodies) == 3


def test_a_sender_that_died_mid_send_leaves_an_uncertain_row() -> None:
    from datetime import timedelta

    from django.utils import timezone

    with topview(PROCESSING="manual"), mock_topview():
        task = TopviewClient().enqueue(BIZ, prompt="x")
        long_ago = timezone.now() - timedelta(hours=1)
        SubmittedTask.objects.filter(pk=task.pk).update(
            status=TaskStatus.SENDING, submitted_at=long_ago
        )
        assert sending.send_queued("default").uncertain == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.UNCERTAIN


def test_submit_takes_owner_and_reference() -> None:
    owner = User.objects.create(username="o")
    with mock_topview():
        task = TopviewClient().submit(BIZ, owner=owner, reference="ref", prompt="x")
    assert task.owner == owner and task.reference == "ref"
    assert list(SubmittedTask.objects.for_owner(owner)) == [task]


@pytest.mark.postgres
def test_forty_committed_five_rolled_back_under_the_limit(record_signal: Any) -> None:
    """The issue's scenario, inline on PostgreSQL, with Topview's limit and lost answers."""
    outcomes = record_signal(signals.task_outcome)
    owners = [User.objects.create(username=f"user{i}") for i in range(40)]
    cap = 5
    with topview(MAX_UNFINISHED=cap), mock_topview(max_unfinished=cap) as fake:
        handle = fake.handle
        seen: list[int] = []  # our own unfinished tasks, at each request to the fake

        def counting_handle(*args: Any) -> Any:
            seen.append(unfinished())
            return handle(*args)

        fake.handle = counting_handle  # type: ignore[method-assign]
        fake.lose_answers(2)  # the first two are accepted, their answers lost
        with transaction.atomic():
            for i, owner in enumerate(owners):
                TopviewClient().enqueue(BIZ, owner=owner, reference=f"ref-{i}", prompt=f"p{i}")
        with pytest.raises(Rollback), transaction.atomic():
            for i in range(5):
                TopviewClient().enqueue(BIZ, reference=f"rolled-{i}", prompt=f"rolled-{i}")
            raise Rollback
        for _round in range(100):
            assert unfinished() <= cap
            if not SubmittedTask.objects.exclude(
                status__in=(TaskStatus.SUCCESS, TaskStatus.UNCERTAIN)
            ).exists():
                break
            # The two lost tasks hold the fake's slots: 4007 answers, then backoff.
            SubmittedTask.objects.filter(status=TaskStatus.QUEUED).update(send_after=None)
            finish_all(fake)
            sending.send_queued()
    assert fake.busy_answers > 0  # the lost tasks held the fake's slots for a while
    assert seen and max(seen) <= cap
    tasks = {t.reference: t for t in SubmittedTask.objects.all()}
    assert sorted(tasks) == sorted(f"ref-{i}" for i in range(40))
    assert sorted(markers_at(fake)) == sorted(t.submission for t in tasks.values())
    assert not any(body["prompt"].startswith("rolled") for body in fake.submit_bodies)
    # The two lost answers were resolved by their callbacks, the others answered.
    resolved = [t for t in tasks.values() if t.resolution]
    assert len(resolved) == 2
    for i, owner in enumerate(owners):
        task = tasks[f"ref-{i}"]
        assert task.status == TaskStatus.SUCCESS
        assert task.owner == owner
        assert task.cost_credit == Decimal("10")
    assert sorted(call["task"].reference for call in outcomes.calls) == sorted(tasks)


@pytest.mark.postgres
def test_two_senders_racing_never_exceed_the_cap_nor_send_twice() -> None:
    cap = 4
    with topview(PROCESSING="manual", MAX_UNFINISHED=cap), mock_topview() as fake:
        handle = fake.handle

        def slow_handle(*args: Any) -> Any:
            threading.Event().wait(0.01)  # the senders' requests overlap
            return handle(*args)

        fake.handle = slow_handle  # type: ignore[method-assign]
        TopviewClient().enqueue_many(BIZ, [Submission({"prompt": str(i)}) for i in range(30)])
        errors: list[BaseException] = []

        def sender(start: threading.Barrier) -> None:
            try:
                start.wait()
                sending.send_queued()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
            finally:
                connection.close()

        for _round in range(20):
            start = threading.Barrier(2)
            threads = [threading.Thread(target=sender, args=(start,)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert not errors
            assert unfinished() <= cap
            if not SubmittedTask.objects.filter(status=TaskStatus.QUEUED).exists():
                break
            finish_all(fake)
            process_due(limit=100)
    assert fake.most_unfinished <= cap
    markers = markers_at(fake)
    assert len(markers) == 30 == len(set(markers))
    assert set(markers) == set(SubmittedTask.objects.values_list("submission", flat=True))


def test_the_fake_answers_4007_past_its_limit() -> None:
    with topview(PROCESSING="manual"), mock_topview(max_unfinished=1) as fake:
        TopviewClient().enqueue_many(BIZ, [Submission({"prompt": str(i)}) for i in range(2)])
        report = sending.send_queued()
    assert (report.sent, report.busy) == (1, 1)
    assert fake.busy_answers == 1
    assert fake.runner.unfinished(UID) == 1


def test_django_tasks_sends_the_queue() -> None:
    if not hasattr(django_settings, "TASKS"):
        pytest.skip("neither django.tasks nor django-tasks is installed")
    with topview(PROCESSING="tasks"), mock_topview() as fake:
        with transaction.atomic():
            task = TopviewClient().enqueue(BIZ, prompt="x")
        assert len(fake.tasks) == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED


def test_manual_leaves_the_queue_to_the_command() -> None:
    with topview(PROCESSING="manual"), mock_topview() as fake:
        with transaction.atomic():
            task = TopviewClient().enqueue(BIZ, prompt="x")
        assert fake.tasks == {}
        call_command("topview_send_queued", "--account", "default", stdout=io.StringIO())
        assert len(fake.tasks) == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED


def test_the_marker_joins_a_notice_url_that_has_a_query_string() -> None:
    url = sending.with_marker("https://x.test/n/?a=1&topview_submission=old", "abc")
    assert url == "https://x.test/n/?a=1&topview_submission=abc"


def test_a_callback_that_came_first_without_its_marker_takes_the_owner() -> None:
    """Topview dropped the query string and the task ended before its submit's answer was
    read: the callback made the task's row; the answer gives it the owner and reference."""
    import responses

    from topview_callbacks.testing import deliver_notice, notice_payload

    owner = User.objects.create(username="late-owner")
    with topview(PROCESSING="manual"):
        task = TopviewClient().enqueue(BIZ, owner=owner, reference="late", prompt="x")
    deliver_notice(notice_payload(BIZ, task_id="T-first"))  # inline: recorded at once
    with topview(PROCESSING="manual"), responses.RequestsMock() as api:
        api.post(
            "https://api.topview.test/v2/common_task/image2video/task/submit",
            json={"code": "200", "message": "Success", "result": {"taskId": "T-first"}},
        )
        assert sending.send_queued().sent == 1
    (only,) = SubmittedTask.objects.all()
    assert (only.task_id, only.status) == ("T-first", TaskStatus.SUCCESS)
    assert (only.owner, only.reference, only.submission) == (owner, "late", task.submission)
