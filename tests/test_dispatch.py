"""dispatch.py: each PROCESSING mode handles a delivery its own way, and never loses it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.settings import topview
from topview_callbacks import dispatch, tasks
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db


def deliver(mode: str, capture: Any, payload: dict[str, Any] | None = None) -> Notice:
    payload = payload or notice_payload("VOICE_CLONE")
    with topview(PROCESSING=mode), capture(execute=True):
        assert deliver_notice(payload).status_code == 200
    return Notice.objects.get(uuid=payload["uuid"])


def test_inline_processes_in_the_request(
    record_signal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    outcomes = record_signal()
    notice = deliver("inline", django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PROCESSED
    assert [call["notice"].pk for call in outcomes.calls] == [notice.pk]


def test_manual_only_stores(record_signal: Any, django_capture_on_commit_callbacks: Any) -> None:
    outcomes = record_signal()
    notice = deliver("manual", django_capture_on_commit_callbacks)
    assert notice.state == NoticeState.PENDING
    assert outcomes.calls == []
    assert dispatch.restart_for("manual") is None


def test_celery_asks_for_a_drain_once_the_notice_is_committed(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    drains: list[str] = []
    monkeypatch.setattr(tasks, "request_drain", lambda: drains.append("drain"))
    notice = deliver("celery", django_capture_on_commit_callbacks)
    assert drains == ["drain"]
    assert notice.state == NoticeState.PENDING


def test_a_repeated_delivery_of_an_unfinished_notice_starts_it_again(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(tasks, "request_drain", lambda: None)
    monkeypatch.setattr(tasks, "enqueue_notice", lambda notice_id, **kw: queued.append(notice_id))
    payload = notice_payload("VOICE_CLONE")
    notice = deliver("celery", django_capture_on_commit_callbacks, payload)
    deliver("celery", django_capture_on_commit_callbacks, payload)  # its message was lost
    assert queued == [notice.pk]
    Notice.objects.filter(pk=notice.pk).update(state=NoticeState.PROCESSED)
    deliver("celery", django_capture_on_commit_callbacks, payload)
    assert queued == [notice.pk]  # a finished one is only acknowledged again


def test_a_backend_that_fails_leaves_the_notice_pending_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("the queue is gone")

    monkeypatch.setattr(tasks, "request_drain", broken)
    stored = dispatch.processing.store(
        {"uuid": "u-1", "biz_type": "VOICE_CLONE", "task_id": "t-1", "status": "success"}
    ).notice
    assert stored is not None
    with (
        topview(PROCESSING="celery"),
        caplog.at_level("ERROR", logger="topview_callbacks.dispatch"),
    ):
        dispatch.start(stored.pk, new=True)  # must not raise
    assert Notice.objects.get(pk=stored.pk).state == NoticeState.PENDING
    [record] = caplog.records
    assert "stays pending" in record.getMessage()
    assert record.topview_notice_id == stored.pk
