"""What an operator may do on these screens: look, and run the actions if allowed.

Notices come from Topview and tasks from the client, so no row is added or edited by
hand; the actions need ``topview_callbacks.replay_notice``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

REPLAY_PERMISSION = "topview_callbacks.replay_notice"


class ReadOnlyMixin:
    """No add or change view (they answer 403); for the admins and the inline alike."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OperatorAdmin(ReadOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """A read-only ``ModelAdmin`` whose actions (``permissions=["replay"]``) need the permission."""

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(REPLAY_PERMISSION))

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes action_location (a changelist or a change form) and warns about
        # an override without it; earlier versions have no such parameter.
        where = {} if action_location is None else {"action_location": action_location}
        actions: dict[str, Any] = super().get_actions(request, **where)
        # Bulk delete collects and deletes row by row: not a tool for these tables.
        actions.pop("delete_selected", None)
        return actions
