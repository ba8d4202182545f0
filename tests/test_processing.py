"""processing: once per outcome, monotonic tasks, failures kept and replayable."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings
from django.utils import timezone

from tests.support.settings import UID_B, topview
from topview_callbacks import processing, signals, sweeping
from topview_callbacks.biz_types import BizType
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)


def receive(payload: dict[str, Any]) -> Notice:
    assert deliver_notice(payload).status_code == 200
    return Notice.objects.get(uuid=payload["uuid"])


def attempt(notice_id: int) -> Notice | None:
    """One attempt at a notice, as a queue's job for it makes; the notice as it ended."""
    done = processing.process_due(notice_id=notice_id, limit=1).notices
    return done[0] if done else None


@pytest.mark.parametrize("biz_type", list(BizType.values))
def test_each_biz_type_fires_the_generic_signal_then_its_own(
    biz_type: str, record_signal: Any
) -> None:
    order: list[str] = []
    generic = record_signal(signals.task_outcome)
    own = record_signal(signals.by_biz_type[biz_type])
    others = [
        record_signal(signal) for name, signal in signals.by_biz_type.items() if name != biz_type
    ]
    signals.task_outcome.connect(
        lambda **kw: order.append("generic"), weak=False, dispatch_uid="o1"
    )
    signals.by_biz_type[biz_type].connect(
        lambda **kw: order.append("own"), weak=False, dispatch_uid="o2"
    )
    try:
        notice = receive(notice_payload(biz_type))
    finally:
        signals.task_outcome.disconnect(dispatch_uid="o1")
        signals.by_biz_type[biz_type].disconnect(dispatch_uid="o2")

    assert order == ["generic", "own"]
    assert len(generic.calls) == len(own.calls) == 1
    assert all(recorder.calls == [] for recorder in others)
    call = own.calls[0]
    assert call["sender"] is Notice
    assert call["notice"].pk == notice.pk
    assert call["task"].task_id == notice.task_id
    assert call["result"] == notice.result
    assert call["succeeded"] is True
    assert notice.state == NoticeState.PROCESSED
    assert notice.attempts == 1
    assert notice.processed_at is not None


def test_an_unknown_biz_type_is_stored_and_sent_on_the_generic_signal_only(
    record_signal: Any,
) -> None:
    generic = record_signal(signals.task_outcome)
    own = [record_signal(signal) for signal in signals.by_biz_type.values()]
    notice = receive(notice_payload("AI_MUSIC_NEXT_YEAR"))
    assert notice.state == NoticeState.PROCESSED
    assert len(generic.calls) == 1
    assert all(recorder.calls == [] for recorder in own)


def test_a_submitted_task_is_linked_and_completed() -> None:
    task = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="t-1", notice_uuid="n-1", status=TaskStatus.SUBMITTED
    )
    notice = receive(notice_payload(task_id="t-1", uuid="n-1"))
    task.refresh_from_db()
    assert notice.submitted_task == task
    assert task.status == TaskStatus.SUCCESS
    assert task.result == notice.result
    assert task.completed_at is not None
    assert list(task.notices.all()) == [notice]


def test_a_notice_for_an_unknown_task_creates_the_task() -> None:
    notice = receive(notice_payload("VOICE_CLONE", task_id="t-new", status="fail", error_msg="bad"))
    task = SubmittedTask.objects.get(task_id="t-new")
    assert notice.submitted_task == task
    assert (task.status, task.error_message, task.notice_uuid) == ("fail", "bad", notice.uuid)


def test_a_second_outcome_for_a_final_task_is_stored_but_not_fired(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    receive(notice_payload(task_id="t-2", status="fail"))
    late = receive(notice_payload(task_id="t-2", status="success"))
    task = SubmittedTask.objects.get(task_id="t-2")
    assert task.status == TaskStatus.FAIL  # final statuses never change
    assert late.state == NoticeState.DUPLICATE
    assert late.submitted_task == task
    assert len(fired.calls) == 1


def test_the_same_task_id_with_another_biz_type_is_another_outcome(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    receive(notice_payload("M2V_PREVIEW", task_id="t-3"))
    receive(notice_payload("M2V_EXPORT", task_id="t-3"))
    assert len(fired.calls) == 2
    assert SubmittedTask.objects.filter(task_id="t-3").count() == 2


def test_an_expired_task_still_takes_a_late_outcome(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    SubmittedTask.objects.create(biz_type="M2V_PREVIEW", task_id="t-4", status=TaskStatus.EXPIRED)
    receive(notice_payload(task_id="t-4"))
    assert SubmittedTask.objects.get(task_id="t-4").status == TaskStatus.SUCCESS
    assert len(fired.calls) == 1


def broken_receiver(sender: Any, **kwargs: Any) -> None:
    raise ValueError("receiver bug 42")


def test_a_raising_receiver_marks_the_notice_failed_with_its_traceback(record_signal: Any) -> None:
    failed = record_signal(signals.notice_processing_failed)
    signals.m2v_preview.connect(broken_receiver)
    try:
        response = deliver_notice(notice_payload(uuid="n-fail"))
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    assert response.status_code == 200
    assert response.json()["result"]["result"] == "success"  # stored safely: acknowledged
    notice = Notice.objects.get(uuid="n-fail")
    assert notice.state == NoticeState.FAILED
    assert "Traceback" in notice.last_error
    assert "ValueError: receiver bug 42" in notice.last_error
    assert notice.attempts == 1
    assert failed.calls[0]["notice"].pk == notice.pk
    assert "receiver bug 42" in failed.calls[0]["error"]


def test_replay_runs_the_receivers_again_without_re_recording_the_outcome(
    record_signal: Any,
) -> None:
    signals.m2v_preview.connect(broken_receiver)
    try:
        notice = receive(notice_payload(uuid="n-replay"))
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    fired = record_signal(signals.m2v_preview)
    replayed = processing.replay_notice(notice.pk)
    assert replayed is not None
    assert replayed.state == NoticeState.PROCESSED
    assert replayed.attempts == 1  # a replay starts with fresh attempts
    assert len(fired.calls) == 1
    assert SubmittedTask.objects.count() == 1


def test_a_processed_notice_is_not_processed_twice(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    notice = receive(notice_payload())
    assert attempt(notice.pk) is None
    assert processing.process_due().claimed == 0
    assert len(fired.calls) == 1


def test_a_notice_an_attempt_just_claimed_is_left_to_it_for_a_moment() -> None:
    with topview(PROCESSING="manual"):
        notice = receive(notice_payload())
    # An attempt marked it and is about to lock it (a process that died right then).
    Notice.objects.filter(pk=notice.pk).update(claim="x" * 32, claimed_at=timezone.now())
    assert attempt(notice.pk) is None
    assert processing.replay_notice(notice.pk) is None
    Notice.objects.filter(pk=notice.pk).update(claimed_at=timezone.now() - timedelta(seconds=1))
    done = attempt(notice.pk)
    assert done is not None and done.state == NoticeState.PROCESSED


def test_manual_mode_only_stores_and_processing_the_due_notices_catches_up(
    record_signal: Any,
) -> None:
    fired = record_signal(signals.task_outcome)
    with topview(PROCESSING="manual"):
        for _ in range(3):
            receive(notice_payload())
    assert fired.calls == []
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PENDING}
    assert sweeping.run_due(limit=2) == 2
    assert sweeping.run_due() == 1
    assert sweeping.run_due() == 0
    assert len(fired.calls) == 3


def test_processing_records_the_parsed_result_on_the_task() -> None:
    payload = notice_payload("COMMON_TASK_TEXT2IMAGE")
    notice = receive(payload)
    assert notice.submitted_task is not None
    assert notice.submitted_task.result == json.loads(payload["result"])
    assert notice.submitted_task.media() == notice.media() != []


def test_a_duplicate_notice_cannot_be_replayed_into_a_second_outcome(record_signal: Any) -> None:
    receive(notice_payload(task_id="t-dup", status="fail"))
    late = receive(notice_payload(task_id="t-dup", status="success"))
    fired = record_signal(signals.task_outcome)
    assert processing.replay_notice(late.pk) is None
    assert fired.calls == []
    assert Notice.objects.get(pk=late.pk).state == NoticeState.DUPLICATE
    assert SubmittedTask.objects.get(task_id="t-dup").status == TaskStatus.FAIL


# --- pinned down by mutation testing (docs/mutation-testing.md) ------------------------------
# These live at the end of the module, with their imports, so the section merges cleanly.

import responses  # noqa: E402

QUERY_VOICE = "https://api.topview.test/v1/voice/clone/task/query"
QUERY_REPLACE = "https://api.topview.test/v1/product_avatar/task/image_replace/result"


def query_answer(**result: Any) -> dict[str, Any]:
    return {"code": "200", "message": "Success", "result": {"errorMsg": None, **result}}


def test_a_replay_fires_with_the_linked_task_and_reports_no_status_change(
    record_signal: Any,
) -> None:
    signals.m2v_preview.connect(broken_receiver)
    try:
        notice = receive(notice_payload(uuid="n-relink"))
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    task = SubmittedTask.objects.get()
    fired = record_signal(signals.m2v_preview)
    changed = record_signal(signals.task_status_changed)
    assert processing.replay_notice(notice.pk) is not None
    assert fired.calls[0]["task"] == task  # the task the first attempt recorded, not None
    assert changed.calls == []  # the outcome was recorded once, on the first attempt


def test_a_submitted_task_reports_its_status_change(record_signal: Any) -> None:
    changed = record_signal(signals.task_status_changed)
    task = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="t-sub", status=TaskStatus.SUBMITTED
    )
    notice = receive(notice_payload(task_id="t-sub"))
    [call] = changed.calls
    assert call["sender"] is SubmittedTask
    assert call["task"] == task
    assert (call["old_status"], call["new_status"]) == (TaskStatus.SUBMITTED, TaskStatus.SUCCESS)
    assert call["notice"].pk == notice.pk


def test_outcome_and_failure_signals_are_sent_by_the_notice_model(record_signal: Any) -> None:
    generic = record_signal(signals.task_outcome)
    failed = record_signal(signals.notice_processing_failed)
    signals.m2v_preview.connect(broken_receiver)
    try:
        receive(notice_payload())
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    assert generic.calls[0]["sender"] is Notice
    assert failed.calls[0]["sender"] is Notice


def test_a_failing_receiver_is_logged_with_the_notice_and_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = notice_payload(uuid="n-logged", task_id="t-logged")
    signals.m2v_preview.connect(broken_receiver)
    try:
        with caplog.at_level("ERROR", logger="topview_callbacks.processing"):
            receive(payload)
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing"]
    assert record.levelname == "ERROR"
    # The line an operator's log alert matches: pinned whole.
    assert record.getMessage() == (
        "A receiver failed on Topview notice 'n-logged' (M2V_PREVIEW t-logged, account default)"
    )
    assert record.exc_info is not None and "receiver bug 42" in str(record.exc_info[1])
    assert record.topview_notice_uuid == "n-logged"  # type: ignore[attr-defined]


def test_a_duplicate_outcome_is_logged_and_stamped_processed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receive(notice_payload(task_id="t-twice", status="fail"))
    with caplog.at_level("INFO", logger="topview_callbacks.processing"):
        late = receive(notice_payload(task_id="t-twice", uuid="n-late"))
    assert late.state == NoticeState.DUPLICATE
    assert late.processed_at is not None  # done with, as far as the pruning and admin go
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing"]
    assert record.getMessage() == (
        "Topview notice 'n-late': the outcome of M2V_PREVIEW t-twice was already delivered; "
        "not fired again"
    )
    assert record.topview_task_id == "t-twice"  # type: ignore[attr-defined]


def test_a_task_keeps_the_first_callback_uuid_it_learns() -> None:
    unknown = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="t-no-uuid", status=TaskStatus.RUNNING
    )
    known = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="t-uuid", notice_uuid="n-from-submit"
    )
    receive(notice_payload(task_id="t-no-uuid", uuid="n-callback"))
    receive(notice_payload(task_id="t-uuid", uuid="n-another"))
    unknown.refresh_from_db()
    known.refresh_from_db()
    assert unknown.notice_uuid == "n-callback"
    assert known.notice_uuid == "n-from-submit"


def test_a_polled_outcome_is_not_taken_for_the_callback_uuid() -> None:
    running = SubmittedTask.objects.create(
        biz_type="VOICE_CLONE", task_id="t-polled", status=TaskStatus.RUNNING
    )
    for task_id in ("t-polled", "t-first-seen-in-a-poll"):
        stored = processing.store(
            {
                "uuid": f"poll:VOICE_CLONE:{task_id}",
                "biz_type": "VOICE_CLONE",
                "task_id": task_id,
                "status": "success",
                "source": "poll",
            }
        ).notice
        assert stored is not None
        assert attempt(stored.pk) is not None
    running.refresh_from_db()
    assert running.status == TaskStatus.SUCCESS
    assert running.notice_uuid == ""
    assert SubmittedTask.objects.get(task_id="t-first-seen-in-a-poll").notice_uuid == ""


@responses.activate
def test_verification_asks_about_the_notices_task_with_its_accounts_key() -> None:
    responses.get(QUERY_VOICE, json=query_answer(taskId="t-brand", status="success"))
    with topview(VERIFY_WITH_QUERY=True):
        response = deliver_notice(notice_payload("VOICE_CLONE", task_id="t-brand"), uid=UID_B)
    assert response.status_code == 200
    [call] = responses.calls
    assert "taskId=t-brand" in str(call.request.url)
    assert call.request.headers["Authorization"] == "Bearer sk-brand-b"
    assert Notice.objects.get().state == NoticeState.PROCESSED


@responses.activate
def test_verification_reads_the_state_where_the_product_puts_it() -> None:
    # This product's query result has "taskStatus", not "status" (biz_types.py).
    responses.get(QUERY_REPLACE, json=query_answer(taskId="t-img", taskStatus="success"))
    with topview(VERIFY_WITH_QUERY=True):
        notice = receive(notice_payload("PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE", task_id="t-img"))
    assert notice.state == NoticeState.PROCESSED
    assert SubmittedTask.objects.get(task_id="t-img").status == TaskStatus.SUCCESS


@responses.activate
def test_a_verified_outcome_takes_topviews_error_message_too() -> None:
    responses.get(
        QUERY_VOICE, json=query_answer(taskId="t-v1", status="fail", errorMsg="quota exceeded")
    )
    responses.get(QUERY_VOICE, json=query_answer(taskId="t-v2", status="success"))
    with topview(VERIFY_WITH_QUERY=True):
        claimed_success = receive(notice_payload("VOICE_CLONE", task_id="t-v1"))
        claimed_failure = receive(
            notice_payload("VOICE_CLONE", task_id="t-v2", status="fail", error_msg="it broke")
        )
    assert (claimed_success.status, claimed_success.error_message) == ("fail", "quota exceeded")
    assert SubmittedTask.objects.get(task_id="t-v1").error_message == "quota exceeded"
    assert (claimed_failure.status, claimed_failure.error_message) == ("success", "")
    assert SubmittedTask.objects.get(task_id="t-v2").error_message == ""


@responses.activate
def test_an_unconfirmed_notice_is_given_back_pending_with_the_reason_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with topview(PROCESSING="manual"):
        stored = receive(notice_payload("VOICE_CLONE", uuid="n-early", task_id="t-early"))
    responses.get(QUERY_VOICE, json=query_answer(taskId="t-early", status="running"))
    with topview(VERIFY_WITH_QUERY=True), caplog.at_level("WARNING"):
        assert attempt(stored.pk) is None  # nothing to process: given back
    notice = Notice.objects.get(pk=stored.pk)
    assert notice.state == NoticeState.PENDING
    # What the admin shows and the warning says: why it waits, and which setting asked.
    assert notice.last_error == (
        "Not confirmed by Topview's query endpoint (VERIFY_WITH_QUERY): the query endpoint "
        "reports the task as 'running'"
    )
    assert notice.next_attempt_at is not None and notice.next_attempt_at > timezone.now()
    assert notice.claim == ""
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing.verification"]
    assert record.getMessage() == f"Topview notice 'n-early': {notice.last_error}"
    assert record.topview_notice_uuid == "n-early"  # type: ignore[attr-defined]


# --- pinned down by mutation testing on PostgreSQL (docs/mutation-testing.md) ----------------


def failed_notice(uuid: str) -> Notice:
    signals.m2v_preview.connect(broken_receiver)
    try:
        notice = receive(notice_payload(uuid=uuid))
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    assert notice.state == NoticeState.FAILED
    return notice


def test_a_replay_resets_and_runs_that_notice_only() -> None:
    with topview(PROCESSING="manual"):
        waiting = receive(notice_payload(uuid="n-waiting"))  # older, and due
    done = receive(notice_payload(uuid="n-done"))
    notice = failed_notice("n-again")
    replayed = processing.replay_notice(notice.pk)
    assert replayed is not None and replayed.pk == notice.pk
    assert replayed.state == NoticeState.PROCESSED
    assert Notice.objects.get(pk=waiting.pk).state == NoticeState.PENDING
    done_now = Notice.objects.get(pk=done.pk)
    assert (done_now.state, done_now.attempts) == (NoticeState.PROCESSED, 1)


def test_a_replay_takes_over_the_claim_of_an_attempt_that_died_long_ago() -> None:
    notice = failed_notice("n-stale-claim")
    Notice.objects.filter(pk=notice.pk).update(
        claim="a" * 32, claimed_at=timezone.now() - timedelta(minutes=1)
    )
    replayed = processing.replay_notice(notice.pk)
    assert replayed is not None and replayed.state == NoticeState.PROCESSED


def test_a_replay_leaves_a_notice_just_claimed_alone_whatever_its_token() -> None:
    notice = failed_notice("n-fresh-claim")
    # uuid4().hex tokens may begin with a digit.
    Notice.objects.filter(pk=notice.pk).update(claim="0" * 32, claimed_at=timezone.now())
    assert processing.replay_notice(notice.pk) is None
    assert Notice.objects.get(pk=notice.pk).state == NoticeState.FAILED


@responses.activate
def test_a_replay_that_topview_does_not_confirm_returns_nothing() -> None:
    with topview(PROCESSING="manual"):
        stored = receive(notice_payload("VOICE_CLONE", uuid="n-replay-early", task_id="t-re"))
    responses.get(QUERY_VOICE, json=query_answer(taskId="t-re", status="running"))
    with topview(VERIFY_WITH_QUERY=True):
        assert processing.replay_notice(stored.pk) is None
    assert Notice.objects.get(pk=stored.pk).state == NoticeState.PENDING


@responses.activate
def test_an_unconfirmed_notice_out_of_attempts_fails_logged_and_reported(
    caplog: pytest.LogCaptureFixture, record_signal: Any
) -> None:
    failed = record_signal(signals.notice_processing_failed)
    with topview(PROCESSING="manual"):
        stored = receive(notice_payload("VOICE_CLONE", uuid="n-spoofed", task_id="t-spoofed"))
    responses.get(QUERY_VOICE, json=query_answer(taskId="t-spoofed", status="running"))
    with topview(VERIFY_WITH_QUERY=True, MAX_ATTEMPTS=1), caplog.at_level("WARNING"):
        assert attempt(stored.pk) is None
    notice = Notice.objects.get(pk=stored.pk)
    assert (notice.state, notice.next_attempt_at, notice.claim) == (NoticeState.FAILED, None, "")
    assert notice.last_error.startswith("Gave up after 1 attempts (MAX_ATTEMPTS).")
    assert "running" in notice.last_error
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing.verification"]
    assert record.levelname == "ERROR"
    assert record.getMessage() == f"Topview notice 'n-spoofed': {notice.last_error}"
    assert record.topview_notice_uuid == "n-spoofed"  # type: ignore[attr-defined]
    [call] = failed.calls
    assert (call["sender"], call["notice"].pk, call["error"]) == (
        Notice,
        notice.pk,
        notice.last_error,
    )


@responses.activate
def test_a_notice_verification_cannot_confirm_ever_is_ignored_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = {**notice_payload("M2V_PREVIEW", uuid="n-future"), "bizType": "FUTURE_PRODUCT"}
    with topview(VERIFY_WITH_QUERY=True), caplog.at_level("WARNING"):
        notice = receive(payload)
    assert notice.state == NoticeState.IGNORED
    assert notice.last_error == (
        "VERIFY_WITH_QUERY is on and bizType 'FUTURE_PRODUCT' has no known query endpoint, so "
        "the notice cannot be verified; nothing was recorded or fired."
    )
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing.verification"]
    assert record.levelname == "WARNING"
    assert record.getMessage() == f"Topview notice 'n-future' ignored: {notice.last_error}"
    assert record.topview_notice_uuid == "n-future"  # type: ignore[attr-defined]
    assert len(responses.calls) == 0  # nothing to ask Topview about


def test_a_receiver_failing_the_last_attempt_leaves_its_notice_failed_for_good() -> None:
    signals.m2v_preview.connect(broken_receiver)
    try:
        with topview(MAX_ATTEMPTS=1):
            notice = receive(notice_payload(uuid="n-last-attempt"))
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    assert (notice.state, notice.next_attempt_at) == (NoticeState.FAILED, None)
    assert "receiver bug 42" in notice.last_error


def test_a_queued_notice_for_another_accounts_task_is_ignored_and_says_whose(
    record_signal: Any,
) -> None:
    fired = record_signal(signals.task_outcome)
    task = SubmittedTask.objects.create(
        account="default", biz_type="M2V_PREVIEW", task_id="t-owned", status=TaskStatus.RUNNING
    )
    with topview(PROCESSING="manual"):
        assert deliver_notice(notice_payload(task_id="t-owned"), uid=UID_B).status_code == 200
    [done] = processing.process_due().notices
    assert (done.state, done.submitted_task_id) == (NoticeState.IGNORED, None)
    stored = Notice.objects.get(pk=done.pk)
    assert (stored.state, stored.last_error) == (NoticeState.IGNORED, done.last_error)
    assert "M2V_PREVIEW t-owned belongs to account 'default'" in stored.last_error
    assert "the Topview-Uid of account 'brand-b'" in stored.last_error
    task.refresh_from_db()
    assert (task.status, task.result) == (TaskStatus.RUNNING, None)
    assert fired.calls == []


@responses.activate
def test_verification_leaves_out_a_notice_whose_outcome_is_recorded_already() -> None:
    notice = failed_notice("n-recorded")  # its outcome is on its task; a receiver failed
    with topview(VERIFY_WITH_QUERY=True):
        replayed = processing.replay_notice(notice.pk)
    assert replayed is not None and replayed.state == NoticeState.PROCESSED
    assert len(responses.calls) == 0


@responses.activate
def test_verification_goes_on_past_a_notice_that_needs_none(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    with topview(PROCESSING="manual"):
        callback = receive(notice_payload("VOICE_CLONE", uuid="n-unconfirmed", task_id="t-cb"))
    # Newer: the notices are looked at newest first.
    polled = processing.store(
        {
            "uuid": "poll:VOICE_CLONE:t-polled",
            "biz_type": "VOICE_CLONE",
            "task_id": "t-polled",
            "status": "success",
            "source": "poll",
        }
    ).notice
    assert polled is not None
    responses.get(QUERY_VOICE, json=query_answer(taskId="t-cb", status="running"))
    with topview(VERIFY_WITH_QUERY=True):
        batch = processing.process_due()
    assert [notice.pk for notice in batch.notices] == [polled.pk]
    assert Notice.objects.get(pk=callback.pk).state == NoticeState.PENDING
    assert [call["notice"].pk for call in fired.calls] == [polled.pk]
    assert len(responses.calls) == 1


def test_a_batch_returns_its_notices_as_their_attempt_left_them(record_signal: Any) -> None:
    processed = record_signal(signals.notice_processed)
    with topview(PROCESSING="manual"):
        receive(notice_payload(uuid="n-fine"))
        receive(notice_payload("VOICE_CLONE", uuid="n-broken"))
    signals.by_biz_type["VOICE_CLONE"].connect(broken_receiver)
    try:
        batch = processing.process_due()
    finally:
        signals.by_biz_type["VOICE_CLONE"].disconnect(broken_receiver)
    fine, broken = sorted(batch.notices, key=lambda notice: notice.uuid != "n-fine")
    assert (fine.uuid, fine.state, fine.claim) == ("n-fine", NoticeState.PROCESSED, "")
    assert fine.processed_at is not None
    assert (broken.uuid, broken.state, broken.claim) == ("n-broken", NoticeState.FAILED, "")
    assert broken.processed_at is None
    [call] = processed.calls
    assert call["notice"].processed_at is not None


def test_a_batch_records_each_outcome_in_order_as_it_would_alone(record_signal: Any) -> None:
    # A batch's outcomes are sent to the database together (sql.fetch_each): a notice for a
    # new task, a second outcome of that task, one for another account's task, and a retry
    # whose outcome its failed first attempt recorded each end as they would alone.
    retry = failed_notice("n-retry")
    Notice.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())
    fired = record_signal(signals.task_outcome)
    SubmittedTask.objects.create(
        account="default", biz_type="M2V_PREVIEW", task_id="t-theirs", status=TaskStatus.RUNNING
    )
    with topview(PROCESSING="manual"):
        receive(notice_payload(uuid="n-first", task_id="t-new"))
        receive(notice_payload(uuid="n-second", task_id="t-new", status="fail"))
        foreign = notice_payload(uuid="n-foreign", task_id="t-theirs")
        assert deliver_notice(foreign, uid=UID_B).status_code == 200
    batch = processing.process_due(limit=10)
    assert [(notice.uuid, notice.state) for notice in batch.notices] == [
        ("n-retry", NoticeState.PROCESSED),
        ("n-first", NoticeState.PROCESSED),
        ("n-second", NoticeState.DUPLICATE),
        ("n-foreign", NoticeState.IGNORED),
    ]
    assert [call["notice"].uuid for call in fired.calls] == ["n-retry", "n-first"]
    task = SubmittedTask.objects.get(task_id="t-new")
    assert (task.status, task.notice_uuid) == (TaskStatus.SUCCESS, "n-first")
    assert SubmittedTask.objects.get(task_id="t-theirs").status == TaskStatus.RUNNING


def test_receive_hands_back_the_notice_as_it_stored_it(record_signal: Any) -> None:
    stored_signal = record_signal(signals.notice_stored)
    given = timezone.now() - timedelta(hours=1)
    fields = {"biz_type": "M2V_PREVIEW", "status": "success"}
    dated = processing.receive(
        {"uuid": "n-dated", "task_id": "t-dated", "received_at": given, **fields}
    )
    undated = processing.receive({"uuid": "n-undated", "task_id": "t-undated", **fields})
    for received in (dated, undated):
        notice = received.notice
        assert notice is not None
        stored = Notice.objects.get(pk=notice.pk)
        assert notice.received_at == stored.received_at
        assert (notice.state, notice.last_error) == (NoticeState.PROCESSED, stored.last_error)
        assert (notice.last_error, notice.attempts, stored.attempts) == ("", 1, 1)
        assert notice.processed_at is not None and stored.processed_at is not None
        assert notice.submitted_task == stored.submitted_task is not None
    assert Notice.objects.get(uuid="n-dated").received_at == given
    assert [call["notice"].uuid for call in stored_signal.calls] == ["n-dated", "n-undated"]


def test_receive_hands_back_and_logs_why_a_notice_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    SubmittedTask.objects.create(account="default", biz_type="M2V_PREVIEW", task_id="t-theirs")
    with caplog.at_level("WARNING", logger="topview_callbacks.processing"):
        notice = processing.receive(
            {
                "uuid": "n-theirs",
                "account": "brand-b",
                "biz_type": "M2V_PREVIEW",
                "task_id": "t-theirs",
                "status": "success",
            }
        ).notice
    assert notice is not None and notice.state == NoticeState.IGNORED
    assert notice.last_error == Notice.objects.get(pk=notice.pk).last_error
    assert "belongs to account 'default'" in notice.last_error
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing"]
    assert record.getMessage() == f"Topview notice 'n-theirs' ignored: {notice.last_error}"
    assert record.topview_notice_uuid == "n-theirs"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("max_attempts", "retried"), [(1, False), (2, True)])
def test_a_receiver_failing_the_first_attempt_is_retried_unless_it_was_the_last(
    max_attempts: int, retried: bool, record_signal: Any
) -> None:
    failed = record_signal(signals.notice_processing_failed)
    signals.m2v_preview.connect(broken_receiver)
    try:
        with topview(MAX_ATTEMPTS=max_attempts):
            notice = receive(notice_payload(uuid=f"n-first-of-{max_attempts}"))
    finally:
        signals.m2v_preview.disconnect(broken_receiver)
    assert (notice.state, notice.attempts) == (NoticeState.FAILED, 1)
    assert (notice.next_attempt_at is not None) is retried
    assert notice.processed_at is None
    [call] = failed.calls  # the notice as the attempt left it, as stored
    reported = call["notice"]
    assert (reported.state, reported.attempts, reported.processed_at) == (notice.state, 1, None)
    assert reported.next_attempt_at == notice.next_attempt_at


@pytest.mark.parametrize("mode", ["inline", "manual"])
def test_a_duplicate_is_linked_to_the_task_that_has_its_outcome(mode: str) -> None:
    receive(notice_payload(task_id="t-had-it", status="fail"))
    values = {"uuid": "n-late", "biz_type": "M2V_PREVIEW", "task_id": "t-had-it", "status": "ok"}
    if mode == "inline":
        late = processing.receive(values).notice
    else:
        processing.store(values)
        [late] = processing.process_due().notices
    task = SubmittedTask.objects.get(task_id="t-had-it")
    assert late is not None
    assert (late.state, late.submitted_task) == (NoticeState.DUPLICATE, task)
    assert Notice.objects.get(uuid="n-late").submitted_task == task


def test_a_queued_notice_records_its_result_and_reception_time_on_its_task() -> None:
    payload = notice_payload("COMMON_TASK_TEXT2IMAGE")
    with topview(PROCESSING="manual"):
        notice = receive(payload)
    received = timezone.now() - timedelta(hours=1)
    Notice.objects.filter(pk=notice.pk).update(received_at=received)
    processing.process_due()
    task = SubmittedTask.objects.get()
    assert (task.result, task.submitted_at) == (json.loads(payload["result"]), received)


def test_the_lifecycle_signals_are_sent_by_the_notice_model() -> None:
    calls: list[str] = []

    def stored(sender: Any, **kwargs: Any) -> None:
        calls.append("stored")

    def processed(sender: Any, **kwargs: Any) -> None:
        calls.append("processed")

    signals.notice_stored.connect(stored, sender=Notice)
    signals.notice_processed.connect(processed, sender=Notice)
    try:
        receive(notice_payload())
    finally:
        signals.notice_stored.disconnect(stored, sender=Notice)
        signals.notice_processed.disconnect(processed, sender=Notice)
    assert calls == ["stored", "processed"]


def test_a_notice_without_result_or_body_stores_null_and_empty_text(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    values = {"uuid": "n-bare", "biz_type": "M2V_PREVIEW", "task_id": "t-bare", "status": "fail"}
    processing.receive(values)
    notice = Notice.objects.get(uuid="n-bare")
    assert (notice.raw_body, notice.result) == ("", None)
    assert Notice.objects.filter(result__isnull=True).count() == 1  # SQL NULL, not JSON null
    assert fired.calls[0]["task"].request_payload == {}


@pytest.mark.parametrize("known", [False, True], ids=["created", "updated"])
def test_receivers_get_the_task_exactly_as_it_was_stored(known: bool, record_signal: Any) -> None:
    # Inline on PostgreSQL a task the notice creates is built from what was sent rather
    # than read back (sql.new_task); either way it must hold every column as stored.
    fired = record_signal(signals.task_outcome)
    if known:  # every kind of column set: each is read back from the call's JSON document
        polled = timezone.now() - timedelta(minutes=3, microseconds=7)
        SubmittedTask.objects.create(
            biz_type="M2V_PREVIEW",
            task_id="t-row",
            reference="order-7",
            status="running",
            request_payload={"prompt": "ünïcode", "seconds": 12.5, "sizes": [1, {"k": None}]},
            last_polled_at=polled,
            next_poll_at=polled + timedelta(hours=1),
            poll_count=3,
            owner_content_type=ContentType.objects.get_for_model(SubmittedTask),
            owner_object_id="42",
            submission="s-1",
            send_attempts=2,
            # PostgreSQL writes this one's fraction as ".12", which Python 3.10's
            # fromisoformat refuses.
            send_after=polled.replace(microsecond=120000),
            resolution="resent",
        )
    result = {"videoUrl": "https://cdn.example/v.mp4", "costCredit": 2.5}
    receive(notice_payload(task_id="t-row", uuid="n-row", result=result))
    (call,) = fired.calls
    task = call["task"]
    stored = SubmittedTask.objects.get(task_id="t-row")
    fields = [field.attname for field in SubmittedTask._meta.concrete_fields]
    assert {name: getattr(task, name) for name in fields} == {
        name: getattr(stored, name) for name in fields
    }
    assert str(task.cost_credit) == str(stored.cost_credit) == "2.5000"
    assert (task.reference, task.previous_status) == ("order-7" if known else "", "running")
    assert task._state.adding is False and task._state.db == stored._state.db


def test_without_use_tz_a_known_task_comes_back_in_naive_local_time(record_signal: Any) -> None:
    # Django then loads naive datetimes in the connection's time zone (TIME_ZONE); the task
    # read back from the call's JSON document must hold the same values.
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Tokyo"):
        fired = record_signal(signals.task_outcome)
        polled = datetime(2026, 12, 7, 9, 30, 0, 123456)
        SubmittedTask.objects.create(
            biz_type="M2V_PREVIEW", task_id="t-naive", status="running", last_polled_at=polled
        )
        receive(notice_payload(task_id="t-naive", uuid="n-naive"))
        (call,) = fired.calls
        task, stored = call["task"], SubmittedTask.objects.get(task_id="t-naive")
        assert task.last_polled_at == stored.last_polled_at == polled
        assert task.submitted_at == stored.submitted_at and task.submitted_at.tzinfo is None
        assert task.completed_at == stored.completed_at
