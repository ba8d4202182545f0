"""Operators' screens: browse what Topview sent, see what the receivers did, fix what failed.

Every screen is read-only (notices come from Topview, tasks from the client); the only
writes are the actions (``actions``), which call ``processing`` and ``polling`` and need
``topview_callbacks.replay_notice`` (``permissions``). Built for big tables: the changelist
machinery (filters that hit indexes, no DISTINCT over the notices, no full ``COUNT(*)``)
lives in ``changelist``. To change a screen, subclass its admin and register it again::

    class MyNoticeAdmin(NoticeAdmin):
        list_per_page = 100

    admin.site.unregister(Notice)
    admin.site.register(Notice, MyNoticeAdmin)
"""

from __future__ import annotations

from django.contrib import admin

from topview_callbacks.admin.changelist import EstimatedCountPaginator, FastListMixin
from topview_callbacks.admin.notices import NoticeAdmin
from topview_callbacks.admin.permissions import OperatorAdmin
from topview_callbacks.admin.tasks import NoticeInline, SubmittedTaskAdmin
from topview_callbacks.models import Notice, SubmittedTask

__all__ = [
    "EstimatedCountPaginator",
    "FastListMixin",
    "NoticeAdmin",
    "NoticeInline",
    "OperatorAdmin",
    "SubmittedTaskAdmin",
]

admin.site.register(Notice, NoticeAdmin)
admin.site.register(SubmittedTask, SubmittedTaskAdmin)
