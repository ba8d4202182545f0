"""Plain admin screens for tasks and notices (browse, filter, search)."""

from __future__ import annotations

from django.contrib import admin

from topview_callbacks.models import Notice, SubmittedTask


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = (
        "received_at",
        "biz_type",
        "task_id",
        "status",
        "state",
        "source",
        "account",
        "delivery_count",
    )
    list_filter = ("state", "status", "source", "biz_type", "account")
    search_fields = ("=uuid", "=task_id")
    date_hierarchy = "received_at"
    list_select_related = ("submitted_task",)
    raw_id_fields = ("submitted_task",)

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(SubmittedTask)
class SubmittedTaskAdmin(admin.ModelAdmin):
    list_display = ("submitted_at", "biz_type", "task_id", "status", "account", "completed_at")
    list_filter = ("status", "biz_type", "account")
    search_fields = ("=task_id", "=notice_uuid")
    date_hierarchy = "submitted_at"

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
