"""The notices screen: what Topview sent, as received, and what the receivers did with it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from topview_callbacks import partitions
from topview_callbacks.admin import actions
from topview_callbacks.admin.changelist import (
    AccountFilter,
    BizTypeFilter,
    FastListMixin,
    NoticeStatusFilter,
)
from topview_callbacks.admin.dashboard import dashboard_view
from topview_callbacks.admin.display import (
    ListColumns,
    NoticeStateColumn,
    OutcomeFields,
    preformatted,
    pretty_json,
)
from topview_callbacks.admin.permissions import OperatorAdmin
from topview_callbacks.models import Notice, NoticeKey


class NoticeAdmin(NoticeStateColumn, ListColumns, OutcomeFields, FastListMixin, OperatorAdmin):
    """Notices, newest first: filters on indexes, exact search, everything shown escaped."""

    # The state right after the time: what an operator looks for first, and visible on a
    # 1400 px screen beside the admin's sidebars (tests/test_admin_layout_browser.py).
    list_display = (
        "received_at",
        "coloured_state",
        "biz_type_column",
        "task_id_column",
        "status",
        "source",
        "account",
    )
    list_filter = (BizTypeFilter, NoticeStatusFilter, "state", "source", AccountFilter)
    # __exact, not "=" (iexact): UPPER(col) = UPPER(%s) would not use the indexes.
    search_fields = ("uuid__exact", "task_id__exact")
    search_help_text = _("Exact uuid or task id.")
    date_hierarchy = "received_at"
    actions = (actions.reprocess, actions.mark_ignored)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Notice], search_term: str
    ) -> tuple[QuerySet[Notice], bool]:
        """Partitioned notices (PARTITION_NOTICES) have no index on uuid: a uuid is looked
        up through its key, which names the month its notice is in."""
        term = search_term.strip()
        if not term or " " in term or not partitions.enabled(partitions.notice_connection()):
            return super().get_search_results(request, queryset, search_term)
        received = NoticeKey.objects.filter(uuid=term).values_list("received_at", flat=True)
        found = Q(task_id=term)
        if (moment := received.first()) is not None:
            found |= Q(uuid=term, received_at=moment)
        return queryset.filter(found), False

    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("uuid", "account"),
                    ("biz_type", "task_id", "task_link"),
                    ("status", "coloured_state", "source"),
                    "error_message",
                    ("received_at", "remote_addr"),
                    ("attempts", "claimed_at", "next_attempt_at", "processed_at"),
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

    def get_urls(self) -> list[URLPattern]:
        # The pipeline dashboard sits beside the notices, under their view permission.
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard),
            name="topview_callbacks_notice_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def dashboard(self, request: HttpRequest, *args: Any) -> HttpResponse:
        return dashboard_view(self, request)

    @admin.display(description=_("submitted task"))
    def task_link(self, notice: Notice) -> str:
        if notice.submitted_task_id is None:
            return "-"
        url = reverse(
            "admin:topview_callbacks_submittedtask_change", args=[notice.submitted_task_id]
        )
        return format_html('<a href="{}">{}</a>', url, _("open the task"))

    @admin.display(description=_("traceback"))
    def last_error_text(self, notice: Notice) -> str:
        return preformatted(notice.last_error) if notice.last_error else "-"

    @admin.display(description=_("raw body"))
    def raw_body_text(self, notice: Notice) -> str:
        return preformatted(notice.raw_body)

    @admin.display(description=_("headers"))
    def headers_json(self, notice: Notice) -> str:
        return pretty_json(notice.headers)
