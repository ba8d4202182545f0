"""The actions on uncertain submissions: sent, the answer lost, waiting for a person.

Either resend (the task may then exist twice at Topview, and cost twice) or give up (it
ends ``fail``); each choice is recorded on the task (``resolution``: who, when).
"""

from __future__ import annotations

import functools

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from topview_callbacks import dispatch, sending
from topview_callbacks.admin.actions import too_many
from topview_callbacks.models import SubmittedTask, TaskStatus


def _uncertain_ids(queryset: QuerySet[SubmittedTask]) -> list[int]:
    return list(queryset.filter(status=TaskStatus.UNCERTAIN).values_list("pk", flat=True))


def _who(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return str(user.get_username()) if user is not None and user.is_authenticated else "?"


@admin.action(
    description=_("Resend uncertain submissions (they may then exist twice)"),
    permissions=["replay"],
)
def resend_uncertain(
    model_admin: admin.ModelAdmin[SubmittedTask],
    request: HttpRequest,
    queryset: QuerySet[SubmittedTask],
) -> None:
    if too_many(request, model_admin, queryset):
        return
    ids = _uncertain_ids(queryset)
    accounts = set(SubmittedTask.objects.filter(pk__in=ids).values_list("account", flat=True))
    count = sending.resend(ids, _who(request))
    for account in accounts:
        transaction.on_commit(functools.partial(dispatch.start_sending, account))
    model_admin.message_user(
        request,
        ngettext("%d submission queued again.", "%d submissions queued again.", count) % count,
        messages.SUCCESS if count else messages.WARNING,
    )


@admin.action(description=_("Give up uncertain submissions"), permissions=["replay"])
def give_up_uncertain(
    model_admin: admin.ModelAdmin[SubmittedTask],
    request: HttpRequest,
    queryset: QuerySet[SubmittedTask],
) -> None:
    if too_many(request, model_admin, queryset):
        return
    count = sending.give_up(_uncertain_ids(queryset), _who(request))
    model_admin.message_user(
        request,
        ngettext("%d submission given up.", "%d submissions given up.", count) % count,
        messages.SUCCESS if count else messages.WARNING,
    )
