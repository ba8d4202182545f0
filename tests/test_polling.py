"""polling.py: reconcile, poll_task, expire_tasks, VERIFY_WITH_QUERY."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
import requests
import responses
from django.core.management import call_command
from django.utils import timezone

from tests.support.settings import UID, topview
from topview_callbacks import polling, signals, sweeping
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db

BASE = "https://api.topview.test"
QUERY = f"{BASE}/v1/voice/clone/task/query"
POLLING = {
    "POLL_AFTER": {"default": 600, "VOICE_CLONE": 60},
    "POLL_BACKOFF": 2,
    "POLL_MAX_INTERVAL": 300,
    "TASK_MAX_AGE": 86400,
}


def answer(status: str, task_id: str = "t-1", **extra: object) -> dict[str, object]:
    result = {"taskId": task_id, "status": status, "errorMsg": None, **extra}
    return {"code": "200", "message": "Success", "result": result}


VOICE = {"voiceId": "v1", "voiceName": "Ann", "demoAudioUrl": "https://cdn.test/v1.mp3"}


@pytest.fixture(autouse=True)
def topview_settings_for_polling() -> Iterator[None]:
    with topview(**POLLING):
        yield


@pytest.fixture
def api():
    # Any request not registered fails the test: "no poll" is checked by absence.
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def outcomes(record_signal):
    return record_signal(signals.task_outcome)


def make_task(
    task_id: str = "t-1", *, due: bool = True, age: timedelta = timedelta(minutes=5), **kw
):
    now = timezone.now()
    return SubmittedTask.objects.create(
        biz_type=kw.pop("biz_type", "VOICE_CLONE"),
        task_id=task_id,
        notice_uuid=kw.pop("notice_uuid", f"uuid-{task_id}"),
        submitted_at=now - age,
        next_poll_at=now - timedelta(seconds=1) if due else now + timedelta(minutes=5),
        **kw,
    )


def callback(
    task_id: str = "t-1", uuid: str | None = None, status: str = "success", run_on_commit=True
):
    payload = notice_payload(
        "VOICE_CLONE", task_id=task_id, uuid=uuid or f"uuid-{task_id}", status=status
    )
    return deliver_notice(payload, run_on_commit=run_on_commit)


def stored_callback(task_id: str, uuid: str | None = None):
    """A callback stored and left pending (not processed yet)."""
    with topview(**POLLING, PROCESSING="manual"):
        return callback(task_id, uuid)


# Due / not due ---------------------------------------------------------------------------


def test_a_due_task_is_queried_and_its_outcome_delivered_once(api, outcomes):
    task = make_task()
    api.get(QUERY, json=answer("success", voice=VOICE))
    report = polling.reconcile()
    assert (report.polled, report.delivered, report.errors) == (1, 1, 0)
    notice = Notice.objects.get()
    assert (notice.source, notice.uuid, notice.state) == ("poll", "uuid-t-1", NoticeState.PROCESSED)
    assert notice.media() == [("audio", "https://cdn.test/v1.mp3")]
    assert json.loads(notice.raw_body)["voice"] == VOICE
    task.refresh_from_db()
    assert (task.status, task.next_poll_at, task.poll_count) == (TaskStatus.SUCCESS, None, 1)
    assert [call["notice"].pk for call in outcomes.calls] == [notice.pk]
    assert outcomes.calls[0]["task"] == task
    # Nothing is due any more: a second pass queries nothing (the mock would refuse it).
    assert polling.reconcile().polled == 0


def test_a_task_not_yet_due_is_not_queried(api):
    make_task(due=False)
    assert polling.reconcile().polled == 0
    assert not Notice.objects.exists()


def test_a_failed_task_becomes_a_fail_notice(api, outcomes):
    make_task()
    api.get(QUERY, json=answer("failed", errorMsg="bad audio"))
    polling.reconcile()
    notice = Notice.objects.get()
    assert (notice.status, notice.error_message) == ("fail", "bad audio")
    assert outcomes.calls[0]["succeeded"] is False


def test_an_unfinished_task_is_polled_again_later_with_backoff(api, outcomes):
    task = make_task()
    api.get(QUERY, json=answer("init"))
    api.get(QUERY, json=answer("running"))
    first = timezone.now()
    report = polling.reconcile(now=first)
    assert (report.polled, report.unfinished) == (1, 1)
    task.refresh_from_db()
    assert task.status == TaskStatus.RUNNING  # Topview knows it: no longer just submitted
    assert task.next_poll_at == first + timedelta(seconds=120)  # 60 s * 2
    assert polling.reconcile(now=first + timedelta(seconds=119)).polled == 0
    second = first + timedelta(seconds=120)
    assert polling.reconcile(now=second).polled == 1
    task.refresh_from_db()
    assert task.next_poll_at == second + timedelta(seconds=240)  # 60 s * 2**2
    assert task.poll_count == 2
    assert not outcomes.calls


def test_the_interval_between_polls_is_capped(api):
    task = make_task(poll_count=10)
    api.get(QUERY, json=answer("running"))
    now = timezone.now()
    polling.reconcile(now=now)
    task.refresh_from_db()
    assert task.next_poll_at == now + timedelta(seconds=300)


def test_a_failing_query_is_counted_and_tried_again_later(api):
    task = make_task()
    api.get(QUERY, json={"code": "5003", "message": "busy", "result": None})
    report = polling.reconcile()
    assert (report.polled, report.errors, report.delivered) == (1, 1, 0)
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED
    assert task.next_poll_at > timezone.now()


def test_the_batch_size_limits_one_pass(api):
    for number in range(3):
        make_task(f"t-{number}")
    for number in range(2):
        api.get(QUERY, json=answer("running", task_id=f"t-{number}"))
    assert polling.reconcile(limit=2).polled == 2


def test_a_task_polled_meanwhile_by_another_pass_is_skipped(api):
    task = make_task()
    stale = SubmittedTask.objects.get(pk=task.pk)
    SubmittedTask.objects.filter(pk=task.pk).update(poll_count=1)
    assert polling.poll_task(stale) is None  # no query was sent (the mock has none)


def test_a_task_without_notice_uuid_gets_a_deterministic_poll_uuid(api):
    make_task(notice_uuid="")
    api.get(QUERY, json=answer("success", voice=VOICE))
    polling.reconcile()
    assert Notice.objects.get().uuid == "poll:VOICE_CLONE:t-1"


# Exactly once, whichever way the outcome comes ----------------------------------------------


def test_no_poll_once_the_callback_came(api, outcomes, django_capture_on_commit_callbacks):
    make_task()
    with django_capture_on_commit_callbacks(execute=True):
        assert callback().status_code == 200
    assert polling.reconcile().polled == 0
    assert len(outcomes.calls) == 1


def test_no_poll_while_a_stored_callback_waits_for_processing(api, outcomes):
    make_task()
    stored_callback("t-1")
    assert Notice.objects.get().state == NoticeState.PENDING
    assert polling.reconcile().polled == 0
    # Nor while it waits for its retry, after its receivers failed.
    Notice.objects.update(state=NoticeState.FAILED, next_attempt_at=timezone.now())
    assert polling.reconcile().polled == 0


def test_a_callback_after_the_poll_with_the_same_uuid_is_acknowledged_not_fired(
    api, outcomes, django_capture_on_commit_callbacks
):
    make_task()
    api.get(QUERY, json=answer("success", voice=VOICE))
    polling.reconcile()
    with django_capture_on_commit_callbacks(execute=True):
        response = callback()
    assert response.status_code == 200
    assert response.json()["result"] == {
        "uuid": "uuid-t-1",
        "topviewUid": UID,
        "result": "success",
    }
    notice = Notice.objects.get()
    assert (notice.source, notice.state) == ("poll", NoticeState.PROCESSED)
    assert len(outcomes.calls) == 1


def test_a_callback_after_the_poll_with_another_uuid_is_stored_as_duplicate(
    api, outcomes, django_capture_on_commit_callbacks
):
    make_task()
    api.get(QUERY, json=answer("success", voice=VOICE))
    polling.reconcile()
    with django_capture_on_commit_callbacks(execute=True):
        assert callback(uuid="another-uuid").status_code == 200
    late = Notice.objects.get(uuid="another-uuid")
    assert (late.source, late.state) == ("callback", NoticeState.DUPLICATE)
    assert len(outcomes.calls) == 1


def test_a_poll_after_the_callback_finds_nothing_to_do(
    api, outcomes, django_capture_on_commit_callbacks
):
    task = make_task()
    with django_capture_on_commit_callbacks(execute=True):
        callback()
    # An explicit poll (e.g. "poll now" in the admin) of a finished task sends nothing.
    assert polling.poll_task(SubmittedTask.objects.get(pk=task.pk)) is None
    assert len(outcomes.calls) == 1


def test_a_callback_racing_the_poll_is_delivered_once(api, outcomes):
    task = make_task()
    # The callback is stored (not yet processed) between our check and the query's answer.
    api.get(QUERY, json=answer("success", voice=VOICE))
    stored_callback("t-1")
    polling.poll_task(task)
    sweeping.run_due()
    assert Notice.objects.count() == 1
    assert len(outcomes.calls) == 1


# Expiry -------------------------------------------------------------------------------------


def test_a_task_past_the_max_age_expires_with_a_signal(api, record_signal):
    expired = record_signal(signals.task_expired)
    old = make_task("old", age=timedelta(days=2), due=False)
    young = make_task("young", due=False)
    report = polling.reconcile()
    assert report.expired == 1
    old.refresh_from_db()
    young.refresh_from_db()
    assert (old.status, old.next_poll_at) == (TaskStatus.EXPIRED, None)
    assert "TASK_MAX_AGE" in old.error_message
    assert young.status == TaskStatus.SUBMITTED
    assert [call["task"].pk for call in expired.calls] == [old.pk]
    assert expired.calls[0]["sender"] is SubmittedTask
    # Expired tasks are not polled again, and expire only once.
    assert polling.reconcile().expired == 0


def test_a_due_old_task_gets_a_last_poll_before_expiring(api, record_signal):
    expired = record_signal(signals.task_expired)
    make_task(age=timedelta(days=2))
    api.get(QUERY, json=answer("success", voice=VOICE))
    report = polling.reconcile()
    assert (report.delivered, report.expired) == (1, 0)
    assert not expired.calls


def test_a_late_callback_still_delivers_an_expired_tasks_outcome(
    api, outcomes, django_capture_on_commit_callbacks
):
    task = make_task(age=timedelta(days=2), due=False)
    polling.reconcile()
    with django_capture_on_commit_callbacks(execute=True):
        callback()
    task.refresh_from_db()
    assert task.status == TaskStatus.SUCCESS
    assert len(outcomes.calls) == 1


def test_a_receiver_error_on_task_expired_does_not_stop_the_pass(api):
    def broken(**kwargs):
        raise RuntimeError("alerting is down")

    signals.task_expired.connect(broken)
    try:
        make_task("a", age=timedelta(days=2), due=False)
        make_task("b", age=timedelta(days=2), due=False)
        assert polling.reconcile().expired == 2
    finally:
        signals.task_expired.disconnect(broken)


# VERIFY_WITH_QUERY --------------------------------------------------------------------------


@pytest.fixture
def verify() -> Iterator[None]:
    # RETRY_BACKOFF 0: a notice Topview did not confirm may be tried again at once.
    with topview(**POLLING, VERIFY_WITH_QUERY=True, RETRY_BACKOFF=0):
        yield


def test_verification_keeps_topviews_answer(
    api, verify, outcomes, django_capture_on_commit_callbacks
):
    make_task()
    api.get(QUERY, json=answer("success", voice=VOICE))
    with django_capture_on_commit_callbacks(execute=True):
        deliver_notice(notice_payload("VOICE_CLONE", task_id="t-1", uuid="uuid-t-1", status="fail"))
    notice = Notice.objects.get()
    assert (notice.status, notice.state, notice.source) == (
        "success",
        NoticeState.PROCESSED,
        "callback",
    )
    assert notice.result["voice"] == VOICE
    assert json.loads(notice.raw_body)["status"] == "fail"  # what was sent stays on record
    assert outcomes.calls[0]["result"]["voice"] == VOICE


def test_an_unconfirmed_callback_stays_pending_and_blocks_nothing(
    api, verify, outcomes, django_capture_on_commit_callbacks
):
    task = make_task()
    api.get(QUERY, json=answer("running"))
    with django_capture_on_commit_callbacks(execute=True):
        callback(uuid="forged-or-early")
    notice = Notice.objects.get()
    assert notice.state == NoticeState.PENDING
    assert "running" in notice.last_error
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED
    assert not outcomes.calls
    # The real callback comes; the query now confirms it; it is delivered once.
    api.get(QUERY, json=answer("success", voice=VOICE))
    with django_capture_on_commit_callbacks(execute=True):
        callback()
    assert len(outcomes.calls) == 1
    # The first notice, retried by the sweep, confirms too but finds the outcome delivered.
    api.get(QUERY, json=answer("success", voice=VOICE))
    sweeping.run_due()
    assert Notice.objects.get(uuid="forged-or-early").state == NoticeState.DUPLICATE
    assert len(outcomes.calls) == 1


def test_a_failing_verification_query_leaves_the_notice_retryable(
    api, verify, outcomes, django_capture_on_commit_callbacks
):
    make_task()
    api.get(QUERY, body=requests.ConnectionError("down"))
    with django_capture_on_commit_callbacks(execute=True):
        callback()
    assert Notice.objects.get().state == NoticeState.PENDING
    api.get(QUERY, json=answer("success", voice=VOICE))
    assert sweeping.run_due() == 1
    assert Notice.objects.get().state == NoticeState.PROCESSED
    assert len(outcomes.calls) == 1


def test_poll_notices_are_not_verified_twice(api, verify, outcomes):
    make_task()
    api.get(QUERY, json=answer("success", voice=VOICE))  # one query only
    polling.reconcile()
    assert len(outcomes.calls) == 1


# The command --------------------------------------------------------------------------------


def test_the_command_runs_one_pass(api, outcomes):
    make_task()
    make_task("old", age=timedelta(days=2), due=False)
    api.get(QUERY, json=answer("success", voice=VOICE))
    out = StringIO()
    call_command("topview_reconcile", stdout=out)
    assert "Polled 1 task(s): 1 outcome(s) delivered" in out.getvalue()
    assert "1 task(s) expired" in out.getvalue()
    assert len(outcomes.calls) == 1


def test_the_command_refuses_a_bad_limit():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("topview_reconcile", limit=0)


def test_a_plain_number_poll_after_applies_to_every_biz_type():
    from topview_callbacks.conf import topview_settings

    with topview(**{**POLLING, "POLL_AFTER": 30}):
        assert topview_settings.poll_after("M2V_EXPORT") == timedelta(seconds=30)
    assert topview_settings.poll_after("M2V_EXPORT") == timedelta(seconds=600)
    assert topview_settings.poll_after("VOICE_CLONE") == timedelta(seconds=60)


def test_an_ignored_notice_does_not_keep_its_task_from_expiring(api, record_signal):
    expired = record_signal(signals.task_expired)
    task = make_task("ignored", age=timedelta(days=2), due=False)
    stored_callback("ignored")  # stays pending ...
    Notice.objects.update(state=NoticeState.IGNORED)  # ... and an operator ignores it
    assert polling.reconcile().expired == 1
    task.refresh_from_db()
    assert task.status == TaskStatus.EXPIRED
    assert [call["task"].pk for call in expired.calls] == [task.pk]


def test_an_ignored_notice_does_not_keep_its_task_from_being_polled(api):
    make_task("polled-again")
    stored_callback("polled-again", uuid="another-uuid")
    Notice.objects.update(state=NoticeState.IGNORED)
    assert [t.task_id for t in polling.due_tasks()] == ["polled-again"]


def test_a_task_of_a_removed_account_is_a_settings_error_not_a_topview_error(
    api, caplog, outcomes
) -> None:
    """The account was removed from ACCOUNTS: nothing is queried, the task is left as it
    was (not counted as polled or errored), and the log names the account and the fix."""
    gone = make_task("t-gone", account="old-brand")
    ours = make_task("t-ours")
    api.get(QUERY, json=answer("running", "t-ours"))
    with caplog.at_level("ERROR", logger="topview_callbacks.polling"):
        report = polling.reconcile()
    assert (report.polled, report.errors, report.misconfigured) == (1, 0, 1)
    assert len(api.calls) == 1 and "t-ours" in api.calls[0].request.url
    gone.refresh_from_db()
    assert (gone.poll_count, gone.status) == (0, TaskStatus.SUBMITTED)
    ours.refresh_from_db()
    assert ours.poll_count == 1
    [record] = [r for r in caplog.records if "old-brand" in r.getMessage()]
    assert "ACCOUNTS" in record.getMessage()
    out = StringIO()  # t-ours is not due again yet; t-gone still is
    call_command("topview_reconcile", stdout=out)
    assert "1 task(s) skipped: their account is not in TOPVIEW_CALLBACKS" in out.getvalue()
    assert outcomes.calls == []


def test_a_polled_result_records_what_the_task_cost(api):
    task = make_task()
    api.get(QUERY, json=answer("success", voice=VOICE, costCredit=2.5))
    polling.reconcile()
    task.refresh_from_db()
    assert task.cost_credit == Decimal("2.5")


def test_a_callback_without_cost_keeps_the_cost_known(api):
    task = make_task(cost_credit=Decimal("3"))
    callback()  # VOICE_CLONE results carry no costCredit
    task.refresh_from_db()
    assert (task.status, task.cost_credit) == (TaskStatus.SUCCESS, Decimal("3"))


def test_with_a_queue_the_command_hands_the_outcome_to_it_and_runs_no_receiver(
    api, outcomes, monkeypatch, django_capture_on_commit_callbacks
):
    from topview_callbacks import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks, "request_drain", lambda: None)
    monkeypatch.setattr(tasks, "enqueue_notice", lambda notice_id, **kw: queued.append(notice_id))
    make_task()
    api.get(QUERY, json=answer("success", voice=VOICE))
    with topview(PROCESSING="celery"), django_capture_on_commit_callbacks(execute=True):
        call_command("topview_reconcile", stdout=StringIO())
    notice = Notice.objects.get(source="poll")
    assert notice.state == NoticeState.PENDING
    assert queued == [notice.pk]
    assert outcomes.calls == []
