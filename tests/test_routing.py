"""A project that keeps the app's tables in a database of their own, on PostgreSQL.

``tests.support.routers`` sends the app's writes to the "notices" alias (a test database
of its own) and its reads to a replica that has not caught up ("default": the schema,
none of the rows). Every path of the pipeline (inline delivery, queued attempts, retries,
verification, replay, giving up) writes and reads its rows through the alias it writes
notices to, and hands back instances that read again from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import responses
from django.utils import timezone

from tests.support.routers import LAGGING_REPLICA, NOTICES
from tests.support.settings import topview
from topview_callbacks import processing, signals
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases=["default", NOTICES]),
]

QUERY_VOICE = "https://api.topview.test/v1/voice/clone/task/query"


@pytest.fixture(autouse=True)
def routed(settings: Any) -> Iterator[None]:
    settings.DATABASE_ROUTERS = ["tests.support.routers.NoticesDatabaseRouter"]
    yield
    assert not Notice.objects.using(LAGGING_REPLICA).exists()
    assert not SubmittedTask.objects.using(LAGGING_REPLICA).exists()


def notices() -> list[tuple[str, str]]:
    return list(Notice.objects.using(NOTICES).order_by("id").values_list("uuid", "state"))


def store(uuid: str, **values: Any) -> Notice:
    received = processing.store(
        {
            "uuid": uuid,
            "biz_type": "VOICE_CLONE",
            "task_id": values.pop("task_id", f"t-{uuid}"),
            "status": "success",
            "result": {"voiceId": "v-1"},
            **values,
        }
    )
    assert received.notice is not None
    return received.notice


class WritesThenFails:
    """A receiver that writes to the notice's task, then raises while ``broken``."""

    broken = True

    def __call__(self, sender: Any, task: SubmittedTask, **kwargs: Any) -> None:
        SubmittedTask.objects.filter(pk=task.pk).update(error_message="written by the receiver")
        if self.broken:
            raise RuntimeError("the receiver is broken")


@pytest.fixture
def writes_then_fails() -> Iterator[WritesThenFails]:
    receiver = WritesThenFails()
    signals.task_outcome.connect(receiver, weak=False, dispatch_uid="writes-then-fails")
    yield receiver
    signals.task_outcome.disconnect(dispatch_uid="writes-then-fails")


def test_an_inline_delivery_is_stored_recorded_and_fired_in_the_notices_database(
    record_signal: Any,
) -> None:
    fired = record_signal(signals.task_outcome)
    payload = notice_payload("VOICE_CLONE", task_id="t-inline")
    assert deliver_notice(payload).status_code == 200
    assert notices() == [(payload["uuid"], NoticeState.PROCESSED)]
    assert SubmittedTask.objects.using(NOTICES).get(task_id="t-inline").status == "success"
    [call] = fired.calls
    call["notice"].refresh_from_db()  # where it was loaded from, not the read route
    call["task"].refresh_from_db()
    assert call["task"].notice_uuid == payload["uuid"]


def test_an_inline_delivery_whose_receiver_fails_keeps_nothing_the_receiver_wrote(
    writes_then_fails: WritesThenFails,
) -> None:
    payload = notice_payload("VOICE_CLONE", task_id="t-inline-fails")
    assert deliver_notice(payload).status_code == 200
    assert notices() == [(payload["uuid"], NoticeState.FAILED)]
    task = SubmittedTask.objects.using(NOTICES).get(task_id="t-inline-fails")
    assert (task.status, task.error_message) == ("success", "")


def test_a_duplicate_delivery_is_linked_to_the_task_that_has_its_outcome() -> None:
    assert deliver_notice(notice_payload("VOICE_CLONE", task_id="t-twice")).status_code == 200
    again = notice_payload("VOICE_CLONE", task_id="t-twice")
    assert deliver_notice(again).status_code == 200
    duplicate = Notice.objects.using(NOTICES).get(uuid=again["uuid"])
    assert duplicate.state == NoticeState.DUPLICATE
    assert duplicate.submitted_task == SubmittedTask.objects.using(NOTICES).get()


def test_a_queued_attempt_whose_receiver_fails_is_rolled_back_and_retried(
    writes_then_fails: WritesThenFails,
) -> None:
    notice = store("u-queued")
    batch = processing.process_due(limit=10)
    assert [(n.uuid, n.state) for n in batch.notices] == [("u-queued", NoticeState.FAILED)]
    task = SubmittedTask.objects.using(NOTICES).get(task_id="t-u-queued")
    assert (task.status, task.error_message) == ("success", "")
    writes_then_fails.broken = False
    Notice.objects.using(NOTICES).filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    [done] = processing.process_due(limit=10).notices
    assert done.state == NoticeState.PROCESSED
    done.refresh_from_db()
    assert done.submitted_task_id == task.pk
    assert notices() == [("u-queued", NoticeState.PROCESSED)]


def test_a_replay_runs_a_processed_notice_again_on_its_task(record_signal: Any) -> None:
    payload = notice_payload("VOICE_CLONE", task_id="t-replayed")
    assert deliver_notice(payload).status_code == 200
    fired = record_signal(signals.task_outcome)
    notice = Notice.objects.using(NOTICES).get()
    replayed = processing.replay_notice(notice.pk)
    assert replayed is not None
    assert replayed.state == NoticeState.PROCESSED
    replayed.refresh_from_db()
    assert replayed.attempts == 1
    [call] = fired.calls
    assert call["task"].task_id == "t-replayed"


def test_a_notice_given_up_is_reported(record_signal: Any) -> None:
    failed = record_signal(signals.notice_processing_failed)
    notice = store("u-given-up")
    Notice.objects.using(NOTICES).filter(pk=notice.pk).update(
        attempts=3, claim="dead", claimed_at=timezone.now() - timedelta(minutes=1)
    )
    with topview(MAX_ATTEMPTS=3):
        assert processing.process_due(limit=10).claimed == 1
    assert notices() == [("u-given-up", NoticeState.FAILED)]
    assert [call["notice"].pk for call in failed.calls] == [notice.pk]


@responses.activate
def test_verification_asks_about_the_notices_it_holds() -> None:
    responses.get(
        QUERY_VOICE,
        json={
            "code": "200",
            "message": "Success",
            "result": {"errorMsg": None, "taskId": "t-u-verified", "status": "success"},
        },
    )
    store("u-verified")
    with topview(VERIFY_WITH_QUERY=True):
        [done] = processing.process_due(limit=10).notices
    assert done.state == NoticeState.PROCESSED
    assert len(responses.calls) == 1


def test_a_notice_for_another_accounts_task_is_ignored_there() -> None:
    SubmittedTask.objects.create(account="default", biz_type="VOICE_CLONE", task_id="t-theirs")
    received = processing.receive(
        {
            "uuid": "u-theirs",
            "account": "brand-b",
            "biz_type": "VOICE_CLONE",
            "task_id": "t-theirs",
            "status": "success",
        }
    )
    assert received.notice is not None
    received.notice.refresh_from_db()  # where it was written: it has no task to tell
    assert received.notice.state == NoticeState.IGNORED
    assert notices() == [("u-theirs", NoticeState.IGNORED)]


def test_a_queued_notice_for_another_accounts_task_is_ignored_there() -> None:
    SubmittedTask.objects.create(account="default", biz_type="VOICE_CLONE", task_id="t-other")
    store("u-other", account="brand-b", task_id="t-other")
    [done] = processing.process_due(limit=10).notices
    done.refresh_from_db()  # where it was read: it has no task to tell
    assert done.state == NoticeState.IGNORED
    assert notices() == [("u-other", NoticeState.IGNORED)]
