"""scheduling.py: each PROCESSING mode starts a stored notice its own way, and never raises."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from topview_callbacks import scheduling, tasks
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db

BASE = {"UID": "test-uid-NsDAaOPF4jLu", "API_KEY": "sk-test-key"}


def deliver(mode: str, capture: Any) -> Notice:
    payload = notice_payload("VOICE_CLONE")
    settings = override_settings(TOPVIEW_CALLBACKS={**BASE, "PROCESSING": mode})
    with settings, capture(execute=True):
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
    assert scheduling.queue_for("manual") is None


def test_celery_queues_the_notice_id(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(tasks, "enqueue_notice", queued.append)
    notice = deliver("celery", django_capture_on_commit_callbacks)
    assert queued == [notice.pk]
    assert notice.state == NoticeState.PENDING


def test_a_backend_that_fails_leaves_the_notice_pending_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, record_signal: Any
) -> None:
    def broken(notice_id: int) -> None:
        raise RuntimeError("the queue is gone")

    monkeypatch.setattr(scheduling, "queue_for", lambda mode: broken)
    notice = Notice.objects.record_delivery(
        uuid="u-1", biz_type="VOICE_CLONE", task_id="t-1", status="success"
    )
    with caplog.at_level("ERROR", logger="topview_callbacks.scheduling"):
        scheduling.start(notice.notice_id)  # must not raise
    assert Notice.objects.get(pk=notice.notice_id).state == NoticeState.PENDING
    [record] = caplog.records
    assert "stays pending" in record.getMessage()
    assert record.topview_notice_id == notice.notice_id
