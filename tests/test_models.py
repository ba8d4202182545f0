"""Models: the idempotent insert, and migrations in step with the models."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from topview_callbacks.models import Notice, NoticeSource, NoticeState, SubmittedTask


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "topview_callbacks", "--check", "--dry-run", stdout=out)
    except SystemExit as exc:  # raised when a migration would be made
        pytest.fail(f"models and migrations have drifted:\n{out.getvalue()} ({exc})")


@pytest.mark.django_db
def test_record_delivery_inserts_once_then_counts_deliveries() -> None:
    first = Notice.objects.record_delivery(
        uuid="u1", biz_type="SCRAPER", task_id="t1", status="success", result={"a": [1, "é"]}
    )
    again = Notice.objects.record_delivery(
        uuid="u1", biz_type="OTHER", task_id="t2", status="fail", result=None
    )
    assert first.created is True
    assert again.created is False
    assert again.notice_id == first.notice_id
    notice = Notice.objects.get()
    # the first delivery's content is kept; later ones only count
    assert (notice.biz_type, notice.task_id, notice.result) == ("SCRAPER", "t1", {"a": [1, "é"]})
    assert notice.delivery_count == 2
    assert notice.state == NoticeState.PENDING
    assert notice.source == NoticeSource.CALLBACK
    assert notice.headers == {}


@pytest.mark.django_db
def test_claim_takes_a_notice_once_and_returns_it_as_stored() -> None:
    stored = Notice.objects.record_delivery(
        uuid="u1", biz_type="SCRAPER", task_id="t1", status="success", result={"a": [1, "é"]}
    )
    before = timezone.now()
    claimed = Notice.objects.claim(stored.notice_id, [NoticeState.PENDING])
    assert claimed is not None
    assert (claimed.uuid, claimed.result, claimed.state) == ("u1", {"a": [1, "é"]}, "processing")
    assert claimed.attempts == 1
    assert claimed.processing_started_at is not None
    assert before <= claimed.processing_started_at <= timezone.now()
    assert Notice.objects.get().processing_started_at == claimed.processing_started_at
    # Taken: neither a second claim nor one that only accepts older work gets it.
    assert Notice.objects.claim(stored.notice_id, [NoticeState.PENDING]) is None
    assert Notice.objects.claim(stored.notice_id, [], stale_before=before) is None
    # Once it has been processing for longer than the caller allows, it can be taken over.
    taken_over = Notice.objects.claim(
        stored.notice_id, [], stale_before=timezone.now() + timedelta(seconds=1)
    )
    assert taken_over is not None and taken_over.attempts == 2


@pytest.mark.django_db
def test_str_of_models_names_what_they_are() -> None:
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t9")
    assert str(task) == "VOICE_CLONE t9 (submitted)"
    Notice.objects.record_delivery(uuid="u9", biz_type="VOICE_CLONE", task_id="t9", status="fail")
    assert str(Notice.objects.get()) == "VOICE_CLONE t9 fail (u9)"


@pytest.mark.parametrize(
    ("last_error", "summary"),
    [
        ("", ""),
        (
            "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n\n",
            "RuntimeError: boom",
        ),
        ("one line", "one line"),
        ("E: " + "x" * 300, "E: " + "x" * 196 + "…"),
    ],
)
def test_error_summary_is_the_exception_line_of_the_traceback(
    last_error: str, summary: str
) -> None:
    assert Notice(last_error=last_error).error_summary == summary


# --- pinned down by mutation testing (docs/mutation-testing.md) ------------------------------


@pytest.mark.django_db
def test_record_delivery_dates_the_first_delivery_at_its_reception() -> None:
    received = timezone.now() - timedelta(hours=3)  # a caller may date the delivery itself
    Notice.objects.record_delivery(
        uuid="u-dated", biz_type="SCRAPER", task_id="t1", status="success", received_at=received
    )
    Notice.objects.record_delivery(uuid="u-now", biz_type="SCRAPER", task_id="t2", status="fail")
    dated, now = Notice.objects.get(uuid="u-dated"), Notice.objects.get(uuid="u-now")
    assert dated.received_at == dated.last_delivery_at == received
    assert now.last_delivery_at == now.received_at
