"""Sending a task outcome's signals without HTTP or a database, for unit tests of receivers.

from topview_callbacks.testing import notice_payload, send_outcome

def test_the_voice_is_kept():
    notice = send_outcome(notice_payload("VOICE_CLONE"))
    ...  # what your receiver did with notice.result
"""

from __future__ import annotations

import json
from typing import Any

from django.utils import timezone

from topview_callbacks.contract import parse_notice
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.processing import send_outcome_signals


def send_outcome(
    payload: dict[str, Any] | str | bytes,
    *,
    account: str = "default",
    task: SubmittedTask | None = None,
) -> Notice:
    """Send ``task_outcome`` and the bizType's signal for ``payload`` to the receivers
    connected now, with the keyword arguments the pipeline gives them; returns the notice.

    The body is validated as the endpoint validates it (``NoticeValidationError`` if it
    would be refused). The ``Notice`` and, unless ``task`` is given, its ``SubmittedTask``
    are built in memory and never saved (their ``pk`` is None), as they look to receivers
    during an attempt: the notice ``processed``, the task holding the outcome. A receiver
    that raises raises here.
    """
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    body = payload.encode() if isinstance(payload, str) else payload
    incoming = parse_notice(body)
    now = timezone.now()
    if task is None:
        task = SubmittedTask(
            account=account,
            biz_type=incoming.biz_type,
            task_id=incoming.task_id,
            notice_uuid=incoming.uuid,
            status=incoming.status,
            previous_status=TaskStatus.SUBMITTED,
            result=incoming.result,
            error_message=incoming.error_message,
            completed_at=now,
        )
    notice = Notice(
        uuid=incoming.uuid,
        account=account,
        biz_type=incoming.biz_type,
        task_id=incoming.task_id,
        status=incoming.status,
        error_message=incoming.error_message,
        result=incoming.result,
        raw_body=incoming.raw_body,
        received_at=now,
        state=NoticeState.PROCESSED,
        attempts=1,
        processed_at=now,
        submitted_task=task,
    )
    send_outcome_signals(notice, task)
    return notice
