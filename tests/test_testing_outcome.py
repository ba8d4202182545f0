"""``testing.send_outcome``: the outcome signals for a notice in memory, no HTTP, no database.

These tests take no ``db`` fixture: pytest-django fails any query they would make.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.dispatch import Signal

from topview_callbacks import signals
from topview_callbacks.exceptions import NoticeValidationError
from topview_callbacks.models import Notice, SubmittedTask
from topview_callbacks.testing import notice_payload, send_outcome


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(signal name, kwargs) of each outcome signal sent while the test runs."""
    calls: list[tuple[str, dict[str, Any]]] = []
    listening: list[tuple[Signal, Any]] = []
    for name, signal in [("task_outcome", signals.task_outcome), *signals.by_biz_type.items()]:

        def listen(sender: Any, _name: str = name, **kwargs: Any) -> None:
            calls.append((_name, kwargs))

        signal.connect(listen, weak=False)
        listening.append((signal, listen))
    yield calls
    for signal, listen in listening:
        signal.disconnect(listen)


def test_the_receivers_get_what_the_pipeline_gives_them(heard: list[Any]) -> None:
    notice = send_outcome(notice_payload("VOICE_CLONE", task_id="t-1", uuid="u-1"))
    assert [name for name, _ in heard] == ["task_outcome", "VOICE_CLONE"]
    kwargs = heard[0][1]
    assert set(kwargs) == {"signal", "notice", "task", "result", "succeeded"}
    assert kwargs["notice"] is notice and heard[1][1]["notice"] is notice
    assert (notice.pk, notice.uuid, notice.task_id, notice.state) == (
        None,
        "u-1",
        "t-1",
        "processed",
    )
    task = kwargs["task"]
    assert isinstance(task, SubmittedTask) and task.pk is None
    assert (task.task_id, task.status, task.notice_uuid) == ("t-1", "success", "u-1")
    assert kwargs["result"] == notice.result == task.result
    assert kwargs["result"]["voice"]["voiceId"] == "v-demo"
    assert kwargs["succeeded"] is True


def test_a_failed_task_and_an_unknown_biz_type(heard: list[Any]) -> None:
    send_outcome(notice_payload("NOT_YET_DOCUMENTED", status="fail", error_msg="no credit"))
    [(name, kwargs)] = heard  # no bizType signal for a bizType this version does not know
    assert name == "task_outcome"
    assert kwargs["succeeded"] is False and kwargs["result"]["errorMsg"] == "no credit"
    assert kwargs["task"].error_message == "no credit"


def test_a_task_of_the_callers_and_an_account(heard: list[Any]) -> None:
    mine = SubmittedTask(task_id="t-2", biz_type="M2V_PREVIEW", request_payload={"a": 1})
    notice = send_outcome(
        notice_payload("M2V_PREVIEW", task_id="t-2"), account="brand-b", task=mine
    )
    assert heard[0][1]["task"] is mine and notice.submitted_task is mine
    assert notice.account == "brand-b"


def test_a_body_the_endpoint_would_refuse_is_refused() -> None:
    with pytest.raises(NoticeValidationError, match="status"):
        send_outcome({**notice_payload("M2V_PREVIEW"), "status": "done"})
    with pytest.raises(NoticeValidationError):
        send_outcome(b"[]")


def test_a_receiver_that_raises_raises_in_the_test() -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise LookupError("no such voice")

    signals.voice_clone.connect(broken, weak=False)
    try:
        with pytest.raises(LookupError, match="no such voice"):
            send_outcome(notice_payload("VOICE_CLONE"))
    finally:
        signals.voice_clone.disconnect(broken)
    assert isinstance(send_outcome(notice_payload("VOICE_CLONE")), Notice)
