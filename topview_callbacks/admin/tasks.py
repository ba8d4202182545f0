"""The submitted tasks screen: what the client asked Topview for, and what came of it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from topview_callbacks.admin import actions, submissions
from topview_callbacks.admin.changelist import AccountFilter, BizTypeFilter, FastListMixin
from topview_callbacks.admin.display import (
    TASK_COLOURS,
    ListColumns,
    NoticeStateColumn,
    OutcomeFields,
    coloured,
    pretty_json,
)
from topview_callbacks.admin.media import (
    ArchivedMediaInline,
    ArchiveFilter,
    archive_now,
    media_summary,
)
from topview_callbacks.admin.permissions import OperatorAdmin, ReadOnlyMixin
from topview_callbacks.models import Notice, SubmittedTask


class NoticeInline(NoticeStateColumn, ReadOnlyMixin, admin.TabularInline):  # type: ignore[type-arg]
    """The notices of a task, newest first, each linking to its own page."""

    model = Notice
    fields = ("received_at", "uuid", "status", "coloured_state", "source", "attempts")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False
    ordering = ("-received_at",)


class SubmittedTaskAdmin(ListColumns, OutcomeFields, FastListMixin, OperatorAdmin):
    """Submitted tasks: how long each waited for its outcome, and its notices inline."""

    # The status right after the time, as on the notices (a 1400 px screen shows it). The
    # completion, polls and next poll are on the task's page: the owner, reference and
    # credits took their place in the list.
    list_display = (
        "submitted_at",
        "coloured_status",
        "biz_type_column",
        "task_id_column",
        "account",
        "waiting",
        "owner_column",
        "cost_column",
    )
    list_filter = ("status", BizTypeFilter, AccountFilter, ArchiveFilter, "owner_content_type")
    search_fields = ("task_id__exact", "reference__exact")
    search_help_text = _("Exact task id or reference.")
    date_hierarchy = "submitted_at"
    actions = (
        actions.poll_now,
        archive_now,
        submissions.resend_uncertain,
        submissions.give_up_uncertain,
    )
    inlines = (NoticeInline, ArchivedMediaInline)
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
                    ("owner_column", "cost_credit"),
                    ("submission", "send_attempts", "send_after"),
                    "resolution",
                )
            },
        ),
        (_("Output media"), {"fields": ("media_preview", "archived_files")}),
        (_("Latest result"), {"fields": ("result_json",)}),
        (_("Request payload"), {"fields": ("request_json",)}),
    )
    readonly_fields = (
        "owner_column",
        "coloured_status",
        "waiting",
        "media_preview",
        "archived_files",
        "result_json",
        "request_json",
    )

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

    @admin.display(description=_("owner, reference"))
    def owner_column(self, task: SubmittedTask) -> str:
        """The owner's type and id (not the object: one query per row otherwise), then the
        reference; one column, so that the list fits a laptop's screen."""
        parts = []
        if task.owner_object_id and task.owner_content_type_id is not None:
            content_type = ContentType.objects.get_for_id(task.owner_content_type_id)
            parts.append(f"{content_type.app_label}.{content_type.model} {task.owner_object_id}")
        if task.reference:
            parts.append(task.reference)
        return " · ".join(parts) or "-"

    @admin.display(description=_("credits"), ordering="cost_credit")
    def cost_column(self, task: SubmittedTask) -> str:
        return "-" if task.cost_credit is None else f"{task.cost_credit.normalize():f}"

    @admin.display(description=_("archived files"))
    def archived_files(self, task: SubmittedTask) -> str:
        return media_summary(task)

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, ArchivedMediaInline) and obj is not None:
            kwargs["queryset"] = inline.first_rows(kwargs["queryset"], obj)
        return kwargs

    @admin.display(description=_("request payload"))
    def request_json(self, task: SubmittedTask) -> str:
        return pretty_json(task.request_payload)
