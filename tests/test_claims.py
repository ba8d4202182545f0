"""processing.claims and the storing statements: attempts counted before they run, the
claim held by a row lock, given up after MAX_ATTEMPTS when attempts never finish."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from tests.support.settings import topview
from topview_callbacks import processing, signals
from topview_callbacks.models import Notice, NoticeSource, NoticeState
from topview_callbacks.processing import claims

pytestmark = pytest.mark.django_db(transaction=True)


def store(uuid: str, **values: Any) -> Notice:
    fields = {"biz_type": "SCRAPER", "task_id": f"t-{uuid}", "status": "success", **values}
    stored = processing.store({"uuid": uuid, **fields}).notice
    assert stored is not None
    return stored


def test_store_inserts_a_uuid_once_and_keeps_the_first_delivery() -> None:
    first = processing.store(
        {
            "uuid": "u1",
            "biz_type": "SCRAPER",
            "task_id": "t1",
            "status": "success",
            "result": {"a": [1, "é"]},
        }
    )
    again = processing.store(
        {"uuid": "u1", "biz_type": "OTHER", "task_id": "t2", "status": "fail", "result": None}
    )
    assert first.notice is not None and not first.repeated
    assert again.notice is None and again.repeated
    notice = Notice.objects.get()
    assert notice.pk == first.notice.pk
    assert (notice.biz_type, notice.task_id, notice.result) == ("SCRAPER", "t1", {"a": [1, "é"]})
    assert (notice.state, notice.attempts, notice.claim) == (NoticeState.PENDING, 0, "")
    assert notice.source == NoticeSource.CALLBACK
    assert notice.headers == {}


def test_store_keeps_the_reception_time_a_caller_gives() -> None:
    received = timezone.now() - timedelta(hours=3)
    store("u-dated", received_at=received)
    assert Notice.objects.get(uuid="u-dated").received_at == received


def test_start_counts_an_attempt_and_marks_the_oldest_due_notices() -> None:
    old = store("u-old", received_at=timezone.now() - timedelta(minutes=5))
    new = store("u-new")
    later = store("u-later")
    Notice.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    before = timezone.now()
    claim = claims.start(connection, limit=5)
    assert claim.notice_ids == [old.pk, new.pk]  # the one due later is not taken
    assert claim.abandoned == []
    rows = {n.pk: n for n in Notice.objects.filter(pk__in=claim.notice_ids)}
    assert {n.claim for n in rows.values()} == {claim.token}
    assert all(n.attempts == 1 and n.claimed_at >= before for n in rows.values())
    # Held: another attempt takes nothing of it, at least for a moment.
    assert claims.start(connection, limit=5).notice_ids == []


def test_start_takes_at_most_limit_notices_oldest_first() -> None:
    stored = [
        store(f"u{i}", received_at=timezone.now() - timedelta(seconds=10 - i)) for i in range(3)
    ]
    assert claims.start(connection, limit=2).notice_ids == [stored[0].pk, stored[1].pk]


def test_lock_reads_the_claims_notices_as_stored() -> None:
    store("u-read", result={"a": [1, "é"]})
    claim = claims.start(connection, limit=1)
    [notice] = claims.lock(connection, claim)
    assert (notice.uuid, notice.result, notice.attempts) == ("u-read", {"a": [1, "é"]}, 1)
    assert notice.claim == claim.token


def test_a_notice_whose_attempts_never_finish_is_given_up(record_signal: Any) -> None:
    failed = record_signal(signals.notice_processing_failed)
    notice = store("u-crashes")
    # Three attempts started and none finished: each time its process died.
    Notice.objects.filter(pk=notice.pk).update(
        attempts=3, claim="dead", claimed_at=timezone.now() - timedelta(minutes=1)
    )
    with topview(MAX_ATTEMPTS=3):
        batch = processing.process_due()
    assert (batch.claimed, batch.notices) == (1, [])
    notice.refresh_from_db()
    assert notice.state == NoticeState.FAILED
    assert notice.last_error.startswith("Given up: MAX_ATTEMPTS attempts were started")
    assert (notice.claim, notice.next_attempt_at) == ("", None)
    assert [call["notice"].pk for call in failed.calls] == [notice.pk]
    assert processing.process_due().claimed == 0  # never taken again, but by a replay


def test_a_failed_notice_is_due_again_when_its_retry_comes() -> None:
    notice = store("u-retry")
    Notice.objects.filter(pk=notice.pk).update(
        state=NoticeState.FAILED, attempts=1, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    assert claims.start(connection, limit=5).notice_ids == []
    Notice.objects.filter(pk=notice.pk).update(next_attempt_at=timezone.now())
    assert claims.start(connection, limit=5).notice_ids == [notice.pk]
    Notice.objects.filter(pk=notice.pk).update(
        claim="", claimed_at=None, next_attempt_at=None
    )  # failed without a retry: given up
    assert claims.start(connection, limit=5).notice_ids == []


# --- pinned down by mutation testing on PostgreSQL (docs/mutation-testing.md) ----------------


def test_a_notice_given_up_is_logged_and_reported_with_why(
    record_signal: Any, caplog: pytest.LogCaptureFixture
) -> None:
    failed = record_signal(signals.notice_processing_failed)
    notice = store("u-killer", biz_type="VOICE_CLONE", task_id="t-killer", account="brand-b")
    Notice.objects.filter(pk=notice.pk).update(
        attempts=3, claim="dead", claimed_at=timezone.now() - timedelta(minutes=1)
    )
    with topview(MAX_ATTEMPTS=3), caplog.at_level("ERROR", logger="topview_callbacks.processing"):
        processing.process_due()
    given_up = Notice.objects.get(pk=notice.pk)
    [record] = [r for r in caplog.records if r.name == "topview_callbacks.processing"]
    assert record.levelname == "ERROR"
    assert record.getMessage() == (
        f"Topview notice 'u-killer' (VOICE_CLONE t-killer, account brand-b): {given_up.last_error}"
    )
    assert record.topview_notice_uuid == "u-killer"  # type: ignore[attr-defined]
    [call] = failed.calls
    assert (call["sender"], call["notice"].pk, call["error"]) == (
        Notice,
        notice.pk,
        given_up.last_error,
    )


@pytest.mark.parametrize(("seconds_ago", "taken"), [(12, False), (16, True)])
def test_with_verification_a_claim_is_left_for_the_query_and_a_margin(
    seconds_ago: int, taken: bool
) -> None:
    # REQUEST_TIMEOUT (10 s) plus 5 s: the attempt may be waiting on Topview that long.
    notice = store("u-asking")
    Notice.objects.filter(pk=notice.pk).update(
        claim="a" * 32, claimed_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    with topview(VERIFY_WITH_QUERY=True, REQUEST_TIMEOUT=10):
        claimed = claims.start(connection, limit=5).notice_ids
    assert claimed == ([notice.pk] if taken else [])


def test_store_hands_back_and_announces_the_notice_as_stored(record_signal: Any) -> None:
    stored_signal = record_signal(signals.notice_stored)
    received = processing.store(
        {"uuid": "u-back", "biz_type": "SCRAPER", "task_id": "t-back", "status": "success"}
    )
    notice = received.notice
    assert notice is not None
    assert (notice.uuid, notice.task_id, notice.state) == ("u-back", "t-back", NoticeState.PENDING)
    [call] = stored_signal.calls
    assert call["notice"] is notice


@pytest.mark.postgres
def test_a_running_attempt_holds_its_notice_and_another_skips_it_at_once(
    record_signal: Any,
) -> None:
    fired = record_signal(signals.task_outcome)
    store("u-slow", biz_type="M2V_PREVIEW")
    started = threading.Event()

    def slow(sender: Any, **kwargs: Any) -> None:
        started.set()
        time.sleep(3)

    def work() -> None:
        try:
            processing.process_due()
        finally:
            connections.close_all()

    signals.task_outcome.connect(slow, weak=False, dispatch_uid="slow-receiver")
    thread = threading.Thread(target=work)
    try:
        thread.start()
        assert started.wait(20)
        time.sleep(claims.CLAIM_GAP.total_seconds() + 0.2)  # only the row lock holds it now
        began = time.monotonic()
        second = processing.process_due()
        waited = time.monotonic() - began
        thread.join(30)
    finally:
        signals.task_outcome.disconnect(dispatch_uid="slow-receiver")
    assert (second.claimed, second.notices) == (0, [])
    assert waited < 1.5  # skipped, not waited for
    assert len(fired.calls) == 1
    assert Notice.objects.get().state == NoticeState.PROCESSED


@pytest.mark.postgres
def test_an_attempt_waits_for_a_row_another_statement_holds_for_a_moment() -> None:
    notice = store("u-held")
    claim = claims.start(connection, limit=1)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                list(Notice.objects.select_for_update().filter(pk=notice.pk))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(20)
        threading.Timer(0.5, release.set).start()
        with transaction.atomic():
            held = claims.lock(connection, claim)
    finally:
        release.set()
        thread.join(30)
    assert [n.pk for n in held] == [notice.pk]
