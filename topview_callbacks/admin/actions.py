"""The operators' actions: reprocess or ignore notices, poll tasks, and how each reports back.

Each action runs the same plain functions as the management commands (``processing``,
``polling``) on a bounded selection, and turns each row's outcome into a message. They
are declared with ``permissions=["replay"]``: see ``permissions.OperatorAdmin``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from topview_callbacks import dispatch, polling, rollups
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState, SubmittedTask

#: The most rows one action runs on synchronously; beyond it, use the management commands.
MAX_ACTION_ROWS = 200
#: The most per-row messages one action shows; the rest are summed up in one line.
MAX_ROW_MESSAGES = 20

Row = TypeVar("Row", Notice, SubmittedTask)


def run_rows(
    request: HttpRequest,
    model_admin: admin.ModelAdmin[Any],
    rows: Iterable[Row],
    run: Callable[[Row], tuple[int, str]],
) -> None:
    """Run ``run`` per row and report each outcome; at most ``MAX_ROW_MESSAGES`` lines."""
    counts: dict[int, int] = {}
    shown = 0
    for row in rows:
        level, text = run(row)
        counts[level] = counts.get(level, 0) + 1
        if shown < MAX_ROW_MESSAGES:
            model_admin.message_user(request, text, level)
            shown += 1
    if shown < sum(counts.values()):
        summary = ", ".join(
            f"{count} {messages.DEFAULT_TAGS[level]}" for level, count in sorted(counts.items())
        )
        model_admin.message_user(request, _("In all: %s.") % summary, messages.INFO)


def too_many(
    request: HttpRequest, model_admin: admin.ModelAdmin[Any], queryset: QuerySet[Any]
) -> bool:
    """Whether the selection is over ``MAX_ACTION_ROWS`` (then the operator is told so)."""
    # Bounded: "select all" on a filtered million-row list must not count it all.
    if len(queryset.order_by().values("pk")[: MAX_ACTION_ROWS + 1]) <= MAX_ACTION_ROWS:
        return False
    model_admin.message_user(
        request,
        _(
            "Select at most %(limit)d rows for this action; for more, use the management "
            "commands (they run the same code)."
        )
        % {"limit": MAX_ACTION_ROWS},
        messages.ERROR,
    )
    return True


def replay_one(notice: Notice) -> tuple[int, str]:
    """Replay one notice (``dispatch.replay``: here, or on the configured queue); (message
    level, text)."""
    label = f"{notice.biz_type} {notice.task_id} ({notice.uuid})"
    duplicate = _("%s: its task already had an outcome; receivers not fired (duplicate).")
    if notice.state == NoticeState.DUPLICATE:
        return messages.WARNING, duplicate % label
    try:
        done = dispatch.replay(notice.pk)
    except Exception as exc:  # an error in processing itself, not in a receiver
        return messages.ERROR, _("%(notice)s: could not reprocess: %(error)s") % {
            "notice": label,
            "error": exc,
        }
    if done is None:
        return messages.WARNING, _("%s: skipped, it is being processed right now.") % label
    if done.state == NoticeState.PENDING:
        return messages.SUCCESS, _("%s: queued; a worker runs the receivers again.") % label
    if done.state == NoticeState.FAILED:
        return messages.ERROR, _("%(notice)s: a receiver failed again: %(error)s") % {
            "notice": label,
            "error": done.error_summary,
        }
    if done.state == NoticeState.DUPLICATE:
        return messages.WARNING, duplicate % label
    return messages.SUCCESS, _("%s: reprocessed, the receivers ran.") % label


def poll_one(task: SubmittedTask) -> tuple[int, str]:
    """Poll one task through ``polling.poll_task``; (message level, text).

    A final answer is recorded as a ``source="poll"`` notice and processed; the message
    names that notice, or says there is none yet (the task is unfinished, or its outcome
    came another way meanwhile).
    """
    label = f"{task.biz_type} {task.task_id}"
    try:
        notice = polling.poll_task(task, start=dispatch.restart_for(topview_settings.processing))
    except Exception as exc:  # reported on the page, one message per task
        return messages.ERROR, _("%(task)s: polling failed: %(error)s") % {
            "task": label,
            "error": exc,
        }
    outcome = notice if notice is not None else _("none yet")
    return messages.SUCCESS, _("%(task)s: polled, outcome: %(outcome)s") % {
        "task": label,
        "outcome": outcome,
    }


@admin.action(description=_("Reprocess: run the receivers again"), permissions=["replay"])
def reprocess(
    model_admin: admin.ModelAdmin[Notice], request: HttpRequest, queryset: QuerySet[Notice]
) -> HttpResponse | None:
    """Ask for confirmation (receivers really run again), then replay each notice."""
    if too_many(request, model_admin, queryset):
        return None
    if request.POST.get("confirmed") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": _("Reprocess these notices?"),
            "opts": model_admin.model._meta,
            "notices": queryset,
            "action": "reprocess",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(request, "topview_callbacks/confirm_reprocess.html", context)
    run_rows(request, model_admin, queryset.order_by("received_at"), replay_one)
    return None


@admin.action(description=_("Mark ignored"), permissions=["replay"])
def mark_ignored(
    model_admin: admin.ModelAdmin[Notice], request: HttpRequest, queryset: QuerySet[Notice]
) -> None:
    # A notice an attempt holds right now is left alone: the attempt would overwrite ours.
    with transaction.atomic():
        free = list(queryset.select_for_update(skip_locked=True).values_list("pk", flat=True))
        changed = Notice.objects.filter(pk__in=free).update(
            state=NoticeState.IGNORED, next_attempt_at=None, claim=""
        )
        rollups.forget(Notice.objects.filter(pk__in=free).values_list("received_at", flat=True))
    model_admin.message_user(
        request,
        ngettext("%d notice marked ignored.", "%d notices marked ignored.", changed) % changed,
        messages.SUCCESS,
    )


@admin.action(description=_("Poll Topview now"), permissions=["replay"])
def poll_now(
    model_admin: admin.ModelAdmin[SubmittedTask],
    request: HttpRequest,
    queryset: QuerySet[SubmittedTask],
) -> None:
    if not too_many(request, model_admin, queryset):
        run_rows(request, model_admin, queryset, poll_one)
