"""The endpoint under test beside the baseline: a bare Django view doing the same INSERT."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from topview_callbacks.models import Notice


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


urlpatterns = [
    path("bare/notice/", bare_notice_view),
    path("topview/", include("topview_callbacks.urls")),
]
