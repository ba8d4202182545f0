"""Recording a task submitted through the client, so the polling fallback knows it."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.utils import timezone

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import SubmittedTask, owner_fields

# Fields never stored with a task: credentials someone might pass as a parameter.
SECRET_PARAMS = frozenset({"apikey", "api_key", "authorization", "token", "password", "secret"})


def record_submitted(
    account: str,
    biz_type: str,
    task_id: str,
    result: dict[str, Any],
    body: dict[str, Any],
    *,
    owner: models.Model | None = None,
    reference: str = "",
) -> SubmittedTask:
    """Create or complete the task's row: a callback may have created it already."""
    now = timezone.now()
    values: dict[str, Any] = {
        **owner_fields(owner),
        "reference": reference,
        "account": account,
        "notice_uuid": str(result.get("noticeUuid") or ""),
        "request_payload": without_secrets(body),
        "submitted_at": now,
        "next_poll_at": now + topview_settings.poll_after(biz_type),
    }
    with transaction.atomic():
        # The callback can beat us here (a fast task): then the row exists, made by
        # processing, and may already be final; keep its outcome, add what we know.
        task, created = SubmittedTask.objects.select_for_update().get_or_create(
            biz_type=biz_type, task_id=task_id, defaults=values
        )
        if not created:
            task.account = values["account"]
            task.notice_uuid = task.notice_uuid or values["notice_uuid"]
            task.request_payload = values["request_payload"]
            fields = ["account", "notice_uuid", "request_payload", "updated_at"]
            if owner is not None or reference:
                task.owner_content_type = values.get("owner_content_type")
                task.owner_object_id = values.get("owner_object_id", "")
                task.reference = reference
                fields += ["owner_content_type", "owner_object_id", "reference"]
            if not task.is_final:
                task.next_poll_at = values["next_poll_at"]
                fields.append("next_poll_at")
            task.save(update_fields=fields)
    return task


def without_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """The request as stored on the task: no credentials, and no path token in noticeUrl."""
    clean = {k: v for k, v in body.items() if k.lower() not in SECRET_PARAMS}
    url = clean.get("noticeUrl")
    if isinstance(url, str):
        for token in topview_settings.all_notice_tokens:
            url = url.replace(token, "<token>")
        clean["noticeUrl"] = url
    return clean
