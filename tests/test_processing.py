"""processing.process_notice: once per outcome, monotonic tasks, failures kept and replayable."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from topview_callbacks import processing, signals, sweeping
from topview_callbacks.biz_types import BizType
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db(transaction=True)
UID = "test-uid-NsDAaOPF4jLu"


def receive(payload: dict[str, Any]) -> Notice:
    assert deliver_notice(payload).status_code == 200
    return Notice.objects.get(uuid=payload["uuid"])


@pytest.mark.parametrize("biz_type", list(BizType.values))
def test_each_biz_type_fires_the_generic_signal_then_its_own(
    biz_type: str, record_signal: Any
) -> None:
    order: list[str] = []
    generic = record_signal(signals.notice_received)
    own = record_signal(signals.by_biz_type[biz_type])
    others = [
        record_signal(signal) for name, signal in signals.by_biz_type.items() if name != biz_type
    ]
    signals.notice_received.connect(
        lambda **kw: order.append("generic"), weak=False, dispatch_uid="o1"
    )
    signals.by_biz_type[biz_type].connect(
        lambda **kw: order.append("own"), weak=False, dispatch_uid="o2"
    )
    try:
        notice = receive(notice_payload(biz_type))
    finally:
        signals.notice_received.disconnect(dispatch_uid="o1")
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
    generic = record_signal(signals.notice_received)
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
    fired = record_signal(signals.notice_received)
    receive(notice_payload(task_id="t-2", status="fail"))
    late = receive(notice_payload(task_id="t-2", status="success"))
    task = SubmittedTask.objects.get(task_id="t-2")
    assert task.status == TaskStatus.FAIL  # final statuses never change
    assert late.state == NoticeState.DUPLICATE
    assert late.submitted_task == task
    assert len(fired.calls) == 1


def test_the_same_task_id_with_another_biz_type_is_another_outcome(record_signal: Any) -> None:
    fired = record_signal(signals.notice_received)
    receive(notice_payload("M2V_PREVIEW", task_id="t-3"))
    receive(notice_payload("M2V_EXPORT", task_id="t-3"))
    assert len(fired.calls) == 2
    assert SubmittedTask.objects.filter(task_id="t-3").count() == 2


def test_an_expired_task_still_takes_a_late_outcome(record_signal: Any) -> None:
    fired = record_signal(signals.notice_received)
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
    assert replayed.attempts == 2
    assert len(fired.calls) == 1
    assert SubmittedTask.objects.count() == 1


def test_a_processed_notice_is_not_processed_twice(record_signal: Any) -> None:
    fired = record_signal(signals.notice_received)
    notice = receive(notice_payload())
    assert processing.process_notice(notice.pk) is None
    assert len(fired.calls) == 1


def test_a_notice_being_processed_cannot_be_claimed_unless_stale() -> None:
    with override_settings(TOPVIEW_CALLBACKS={"UID": UID, "PROCESSING": "manual"}):
        notice = receive(notice_payload())
    Notice.objects.filter(pk=notice.pk).update(
        state=NoticeState.PROCESSING, processing_started_at=timezone.now() - timedelta(minutes=5)
    )
    assert processing.process_notice(notice.pk) is None
    assert processing.replay_notice(notice.pk) is None
    assert processing.process_notice(notice.pk, stale_after=timedelta(minutes=10)) is None
    done = processing.process_notice(notice.pk, stale_after=timedelta(minutes=1))
    assert done is not None and done.state == NoticeState.PROCESSED


def test_manual_mode_only_stores_and_the_sweep_catches_up(record_signal: Any) -> None:
    fired = record_signal(signals.notice_received)
    with override_settings(TOPVIEW_CALLBACKS={"UID": UID, "PROCESSING": "manual"}):
        for _ in range(3):
            receive(notice_payload())
    assert fired.calls == []
    assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PENDING}
    assert sweeping.sweep(pending_after=timedelta(0), limit=2) == 2
    assert sweeping.sweep(pending_after=timedelta(0)) == 1
    assert sweeping.sweep(pending_after=timedelta(0)) == 0
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
    fired = record_signal(signals.notice_received)
    assert processing.replay_notice(late.pk) is None
    assert fired.calls == []
    assert Notice.objects.get(pk=late.pk).state == NoticeState.DUPLICATE
    assert SubmittedTask.objects.get(task_id="t-dup").status == TaskStatus.FAIL
