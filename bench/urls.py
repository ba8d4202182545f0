"""The endpoint under test beside the baseline: a bare Django view doing the same INSERT."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from topview_callbacks import signals
from topview_callbacks.models import Notice, SubmittedTask


@csrf_exempt
def bare_notice_view(request: HttpRequest) -> JsonResponse:
    """No authentication, no validation, no envelope checks: parse, insert, answer."""
    raw = request.body.decode()
    body = json.loads(raw)
    Notice.objects.record_delivery(
        uuid=body["uuid"],
        biz_type=body["bizType"],
        task_id=body["taskId"],
        status=body["status"],
        error_message=body["errorMsg"] or "",
        result=json.loads(body["result"]),
        raw_body=raw,
        headers=dict(request.headers),
        remote_addr=request.META.get("REMOTE_ADDR"),
    )
    return JsonResponse(
        {"code": "200", "message": "Success", "result": {"uuid": body["uuid"], "result": "success"}}
    )


@csrf_exempt
def bare_signals_view(request: HttpRequest) -> JsonResponse:
    """The baseline for inline processing: the same INSERT in an atomic block, then the
    outcome signals the app sends (same receivers), with an unsaved task."""
    raw = request.body.decode()
    body = json.loads(raw)
    values = {
        "uuid": body["uuid"],
        "biz_type": body["bizType"],
        "task_id": body["taskId"],
        "status": body["status"],
        "error_message": body["errorMsg"] or "",
        "result": json.loads(body["result"]),
        "raw_body": raw,
        "headers": dict(request.headers),
        "remote_addr": request.META.get("REMOTE_ADDR"),
    }
    with transaction.atomic():
        delivery = Notice.objects.record_delivery(**values)
    if delivery.created:
        notice = Notice(id=delivery.notice_id, **values)
        task = SubmittedTask(biz_type=notice.biz_type, task_id=notice.task_id)
        kwargs = {"notice": notice, "task": task, "result": notice.result, "succeeded": True}
        signals.notice_received.send(sender=Notice, **kwargs)
        signals.by_biz_type[notice.biz_type].send(sender=Notice, **kwargs)
    return JsonResponse(
        {"code": "200", "message": "Success", "result": {"uuid": body["uuid"], "result": "success"}}
    )


urlpatterns = [
    path("bare/signals/", bare_signals_view),
    path("bare/notice/", bare_notice_view),
    path("topview/", include("topview_callbacks.urls")),
]
