"""The endpoint under test beside its baselines: bare Django views doing the same INSERT."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from topview_callbacks import signals
from topview_callbacks.models import Notice, SubmittedTask

# What a developer would write for speed, by hand: one INSERT of the notice's row, and
# nothing for a repeated uuid. No conflict target: the same on the plain table (its one
# unique constraint but the key is the uuid's), and allowed on a partitioned one
# (bench/partitions.py), which has no unique constraint on uuid to name.
INSERT = """
INSERT INTO topview_callbacks_notice (uuid, account, biz_type, task_id, status,
    error_message, result, raw_body, headers, remote_addr, source, received_at, state,
    attempts, last_error, next_attempt_at, claimed_at, claim, processed_at, submitted_task_id)
VALUES (%s, 'default', %s, %s, %s, %s, %s, %s, %s, %s, 'callback', %s, 'pending', 0, '',
    NULL, NULL, '', NULL, NULL)
ON CONFLICT DO NOTHING
RETURNING id
"""


def _insert(request: HttpRequest) -> tuple[dict[str, Any], int | None]:
    raw = request.body.decode()
    body = json.loads(raw)
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT,
            [
                body["uuid"],
                body["bizType"],
                body["taskId"],
                body["status"],
                body["errorMsg"] or "",
                body["result"],  # the JSON text, as it came
                raw,
                json.dumps(dict(request.headers)),
                request.META.get("REMOTE_ADDR"),
                timezone.now(),
            ],
        )
        row = cursor.fetchone()
    return body, None if row is None else int(row[0])


def _answer(body: dict[str, Any]) -> JsonResponse:
    return JsonResponse(
        {"code": "200", "message": "Success", "result": {"uuid": body["uuid"], "result": "success"}}
    )


@csrf_exempt
def bare_notice_view(request: HttpRequest) -> JsonResponse:
    """No authentication, no validation, no envelope checks: parse, insert, answer."""
    body, _notice_id = _insert(request)
    return _answer(body)


@csrf_exempt
def bare_signals_view(request: HttpRequest) -> JsonResponse:
    """The baseline for inline processing: the same INSERT in an atomic block, the outcome
    signals the app sends (same receivers, an unsaved task) inside it."""
    with transaction.atomic():
        body, notice_id = _insert(request)
        if notice_id is not None:
            notice = Notice(
                id=notice_id,
                uuid=body["uuid"],
                biz_type=body["bizType"],
                task_id=body["taskId"],
                status=body["status"],
                result=json.loads(body["result"]),
            )
            task = SubmittedTask(biz_type=notice.biz_type, task_id=notice.task_id)
            kwargs = {"notice": notice, "task": task, "result": notice.result, "succeeded": True}
            signals.task_outcome.send(sender=Notice, **kwargs)
            signals.by_biz_type[notice.biz_type].send(sender=Notice, **kwargs)
    return _answer(body)


urlpatterns = [
    # The endpoint's async view (bench/servers.py), under its own namespace.
    path("async/", include(("topview_callbacks.urls_async", "topview_callbacks"), "async")),
    path("bare/signals/", bare_signals_view),
    path("bare/notice/", bare_notice_view),
    path("topview/", include("topview_callbacks.urls")),
]
