"""Operators' screens: browse what Topview sent, see what the receivers did, fix what failed.

Every screen is read-only (notices come from Topview, tasks from the client); the only
writes are the actions (``admin_actions``), which call ``processing`` and ``polling`` and
need ``topview_callbacks.replay_notice``.
Built for big tables: the changelist machinery (filters that hit indexes, no DISTINCT over
the notices, no full ``COUNT(*)``) lives in ``admin_lists``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from topview_callbacks.admin_actions import poll_one, replay_one, run_rows, too_many
from topview_callbacks.admin_lists import (
    AccountFilter,
    BizTypeFilter,
    FastListMixin,
    NoticeStatusFilter,
)
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus

STATE_COLOURS = {
    NoticeState.PENDING: "#8a6d00",
    NoticeState.PROCESSING: "#205493",
    NoticeState.PROCESSED: "#1e7e34",
    NoticeState.FAILED: "#ba2121",
    NoticeState.DUPLICATE: "#666666",
    NoticeState.IGNORED: "#666666",
}
TASK_COLOURS = {
    TaskStatus.SUBMITTED: "#8a6d00",
    TaskStatus.RUNNING: "#205493",
    TaskStatus.SUCCESS: "#1e7e34",
    TaskStatus.FAIL: "#ba2121",
    TaskStatus.EXPIRED: "#666666",
}
PRE_STYLE = (
    "white-space: pre-wrap; overflow-wrap: anywhere; max-height: 32em; overflow: auto; "
    "margin: 0; padding: 8px; background: var(--darkened-bg); color: var(--body-fg);"
)


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON inside an escaped ``<pre>``."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text)


def preformatted(text: str) -> str:
    """``text`` verbatim (a raw body is evidence: not reformatted) in an escaped ``<pre>``."""
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text or "-")


def media_preview(media: Iterable[tuple[str, str]]) -> str:
    """Players for the output media; only http(s) URLs ever reach the page."""
    safe = [
        {"kind": kind, "url": url}
        for kind, url in media
        if urlsplit(url).scheme.lower() in ("http", "https") and urlsplit(url).netloc
    ]
    return render_to_string("topview_callbacks/media_preview.html", {"media": safe})


def coloured(value: str, label: str, colours: dict[Any, str]) -> str:
    return format_html(
        '<span style="color: {}; font-weight: bold">{}</span>', colours.get(value, "inherit"), label
    )


class NoticeInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Notice
    fields = ("received_at", "uuid", "status", "coloured_state", "source", "delivery_count")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False
    ordering = ("-received_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("processing state"))
    def coloured_state(self, notice: Notice) -> str:
        return coloured(notice.state, notice.get_state_display(), STATE_COLOURS)


@admin.register(Notice)
class NoticeAdmin(FastListMixin, admin.ModelAdmin):  # type: ignore[type-arg,misc]
    list_display = (
        "received_at",
        "biz_type",
        "task_id",
        "status",
        "coloured_state",
        "source",
        "account",
        "delivery_count",
    )
    list_filter = (BizTypeFilter, NoticeStatusFilter, "state", "source", AccountFilter)
    # __exact, not "=" (iexact): UPPER(col) = UPPER(%s) would not use the indexes.
    search_fields = ("uuid__exact", "task_id__exact")
    search_help_text = _("Exact uuid or task id.")
    date_hierarchy = "received_at"
    change_list_template = "topview_callbacks/change_list.html"
    actions = ("reprocess", "mark_ignored")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("uuid", "account"),
                    ("biz_type", "task_id", "task_link"),
                    ("status", "coloured_state", "source"),
                    "error_message",
                    ("received_at", "last_delivery_at", "delivery_count", "remote_addr"),
                    ("attempts", "processing_started_at", "processed_at"),
                )
            },
        ),
        (_("Output media"), {"fields": ("media_preview",)}),
        (_("Last failure"), {"fields": ("last_error_text",)}),
        (_("Result (parsed)"), {"fields": ("result_json",)}),
        (_("Raw body (as received)"), {"fields": ("raw_body_text",)}),
        (_("Headers"), {"fields": ("headers_json",)}),
    )
    readonly_fields = (
        "task_link",
        "coloured_state",
        "media_preview",
        "last_error_text",
        "result_json",
        "raw_body_text",
        "headers_json",
    )

    @admin.display(description=_("processing state"), ordering="state")
    def coloured_state(self, notice: Notice) -> str:
        return coloured(notice.state, notice.get_state_display(), STATE_COLOURS)

    @admin.display(description=_("submitted task"))
    def task_link(self, notice: Notice) -> str:
        if notice.submitted_task_id is None:
            return "-"
        url = reverse(
            "admin:topview_callbacks_submittedtask_change", args=[notice.submitted_task_id]
        )
        return format_html('<a href="{}">{}</a>', url, _("open the task"))

    @admin.display(description=_("preview"))
    def media_preview(self, notice: Notice) -> str:
        return media_preview(notice.media())

    @admin.display(description=_("traceback"))
    def last_error_text(self, notice: Notice) -> str:
        return preformatted(notice.last_error) if notice.last_error else "-"

    @admin.display(description=_("result"))
    def result_json(self, notice: Notice) -> str:
        return pretty_json(notice.result)

    @admin.display(description=_("raw body"))
    def raw_body_text(self, notice: Notice) -> str:
        return preformatted(notice.raw_body)

    @admin.display(description=_("headers"))
    def headers_json(self, notice: Notice) -> str:
        return pretty_json(notice.headers)

    @admin.action(description=_("Reprocess: run the receivers again"), permissions=["replay"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[Notice]) -> HttpResponse | None:
        if too_many(request, self, queryset):
            return None
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Reprocess these notices?"),
                "opts": self.model._meta,
                "notices": queryset,
                "action": "reprocess",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(request, "topview_callbacks/confirm_reprocess.html", context)
        run_rows(request, self, queryset.order_by("received_at"), replay_one)
        return None

    @admin.action(description=_("Mark ignored"), permissions=["replay"])
    def mark_ignored(self, request: HttpRequest, queryset: QuerySet[Notice]) -> None:
        # A notice being processed keeps its state: its worker would overwrite ours.
        changed = queryset.exclude(state=NoticeState.PROCESSING).update(state=NoticeState.IGNORED)
        self.message_user(
            request,
            ngettext("%d notice marked ignored.", "%d notices marked ignored.", changed) % changed,
            messages.SUCCESS,
        )


@admin.register(SubmittedTask)
class SubmittedTaskAdmin(FastListMixin, admin.ModelAdmin):  # type: ignore[type-arg,misc]
    list_display = (
        "submitted_at",
        "biz_type",
        "task_id",
        "coloured_status",
        "account",
        "waiting",
        "completed_at",
        "poll_count",
        "next_poll_at",
    )
    list_filter = ("status", BizTypeFilter, AccountFilter)
    search_fields = ("task_id__exact",)
    search_help_text = _("Exact task id.")
    date_hierarchy = "submitted_at"
    change_list_template = "topview_callbacks/change_list.html"
    actions = ("poll_now",)
    inlines = (NoticeInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("biz_type", "task_id", "account"),
                    ("coloured_status", "waiting"),
                    "notice_uuid",
                    "error_message",
                    ("submitted_at", "completed_at", "updated_at"),
                    ("last_polled_at", "next_poll_at", "poll_count"),
                )
            },
        ),
        (_("Output media"), {"fields": ("media_preview",)}),
        (_("Latest result"), {"fields": ("result_json",)}),
        (_("Request payload"), {"fields": ("request_json",)}),
    )
    readonly_fields = ("coloured_status", "waiting", "media_preview", "result_json", "request_json")

    @admin.display(description=_("status"), ordering="status")
    def coloured_status(self, task: SubmittedTask) -> str:
        return coloured(task.status, task.get_status_display(), TASK_COLOURS)

    @admin.display(description=_("waiting for a notice"))
    def waiting(self, task: SubmittedTask) -> str:
        """How long the task waited for its outcome (so far, while it has none)."""
        if task.completed_at is None and task.is_final:
            return "-"  # an outcome recorded without its time: nothing to measure
        end = task.completed_at if task.completed_at else timezone.now()
        seconds = max(0, int((end - task.submitted_at).total_seconds()))
        text = f"{seconds // 3600}:{seconds % 3600 // 60:02}:{seconds % 60:02}"
        return text if task.completed_at else format_html("<em>{} …</em>", text)

    @admin.display(description=_("preview"))
    def media_preview(self, task: SubmittedTask) -> str:
        return media_preview(task.media())

    @admin.display(description=_("result"))
    def result_json(self, task: SubmittedTask) -> str:
        return pretty_json(task.result)

    @admin.display(description=_("request payload"))
    def request_json(self, task: SubmittedTask) -> str:
        return pretty_json(task.request_payload)

    @admin.action(description=_("Poll Topview now"), permissions=["replay"])
    def poll_now(self, request: HttpRequest, queryset: QuerySet[SubmittedTask]) -> None:
        if not too_many(request, self, queryset):
            run_rows(request, self, queryset, poll_one)
