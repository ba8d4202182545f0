"""Archived media on the task screen: the files, a filter for what is missing, "archive now".

The action runs the same plain functions as ``topview_archive_media``; with Celery it only
queues the downloads (a 500 MB video does not belong in an admin request).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from topview_callbacks import archiving, dispatch
from topview_callbacks.admin.actions import run_rows, too_many
from topview_callbacks.admin.display import coloured, truncated
from topview_callbacks.admin.permissions import ReadOnlyMixin
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    GIVEN_UP_MEDIA_STATES,
    ArchivedMedia,
    MediaState,
    SubmittedTask,
    TaskStatus,
)

#: Rows of the files list on a task's page: a result may name thousands of outputs (up to
#: ARCHIVE_MAX_FILES get rows), and the page must still load.
MEDIA_ROWS_SHOWN = 50

MEDIA_COLOURS = {
    MediaState.PENDING: "#8a6d00",
    MediaState.ARCHIVED: "#1e7e34",
    MediaState.FAILED: "#ba2121",
    MediaState.EXPIRED: "#ba2121",
    MediaState.REFUSED: "#ba2121",
}


class ArchivedMediaInline(ReadOnlyMixin, admin.TabularInline):  # type: ignore[type-arg]
    """The task's files: where they are stored, or why not."""

    model = ArchivedMedia
    fields = (
        "kind",
        "index",
        "coloured_state",
        "file_size",
        "stored_file",
        "source",
        "attempts",
        "last_error",
        "archived_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("archived media")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The files are part of the task: whoever may see the task sees them.
        return bool(request.user.has_perm("topview_callbacks.view_submittedtask"))

    @staticmethod
    def first_rows(queryset: QuerySet[ArchivedMedia], task: SubmittedTask) -> QuerySet[Any]:
        """The task's first ``MEDIA_ROWS_SHOWN`` rows (the formset filters by task itself,
        which a sliced queryset would not allow)."""
        first = queryset.filter(task=task).order_by("kind", "index").values_list("pk", flat=True)
        return queryset.filter(pk__in=list(first[:MEDIA_ROWS_SHOWN]))

    @admin.display(description=_("state"))
    def coloured_state(self, media: ArchivedMedia) -> str:
        return coloured(media.state, media.get_state_display(), MEDIA_COLOURS)

    @admin.display(description=_("size"))
    def file_size(self, media: ArchivedMedia) -> str:
        return filesizeformat(media.size) if media.size is not None else "-"

    @admin.display(description=_("stored file"))
    def stored_file(self, media: ArchivedMedia) -> str:
        if not media.file:
            return "-"
        # A download, not a page: whatever the server says the file is, the browser saves it.
        return format_html(
            '<a href="{}" download>{}</a>', media.file.url, truncated(media.file.name or "", 16)
        )

    @admin.display(description=_("source URL"))
    def source(self, media: ArchivedMedia) -> str:
        # Text, not a link: an operator should not be sent to a URL a notice named. One
        # line, cut, the whole URL on hover: wrapped in this squeezed column it took one
        # line per character.
        return format_html("<code>{}</code>", truncated(media.source_url, 22, "topview-url"))


def media_summary(task: SubmittedTask) -> str:
    """How many files the task has in each state, and what the list below leaves out."""
    rows = ArchivedMedia.objects.filter(task=task).order_by().values("state")
    states = dict(rows.annotate(n=Count("pk")).values_list("state", "n"))
    outputs, limit = len(task.media()), topview_settings.archive_max_files
    parts = []
    if states:
        total = sum(states.values())
        text = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        parts.append(_("%(total)d file(s): %(states)s.") % {"total": total, "states": text})
        if total > MEDIA_ROWS_SHOWN:
            parts.append(_("The list below shows the first %(n)d.") % {"n": MEDIA_ROWS_SHOWN})
    if outputs > limit:
        parts.append(
            _(
                "The result names %(outputs)d outputs; only the first %(limit)d are "
                "archived (ARCHIVE_MAX_FILES)."
            )
            % {"outputs": outputs, "limit": limit}
        )
    return " ".join(str(part) for part in parts) or "-"


class ArchiveFilter(admin.SimpleListFilter):
    """Tasks whose files are not (all) in the storage."""

    title = _("archived media")
    parameter_name = "archive"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("incomplete", _("Missing or failed files")),
            ("given_up", _("Failed, expired or refused files")),
            ("pending", _("Files still pending")),
            ("none", _("Successful, no file rows")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        rows = ArchivedMedia.objects.filter(task=OuterRef("pk"))
        choice = self.value()
        if choice == "incomplete":
            return queryset.filter(Exists(rows.exclude(state=MediaState.ARCHIVED)))
        if choice == "given_up":
            return queryset.filter(Exists(rows.filter(state__in=GIVEN_UP_MEDIA_STATES)))
        if choice == "pending":
            return queryset.filter(Exists(rows.filter(state=MediaState.PENDING)))
        if choice == "none":
            return queryset.filter(status=TaskStatus.SUCCESS).exclude(Exists(rows))
        return queryset


def archive_task_now(task: SubmittedTask) -> tuple[int, str]:
    """Create missing rows, retry given-up ones, then queue or download; (level, text)."""
    label = f"{task.biz_type} {task.task_id}"
    archiving.create_rows(task)
    archiving.retry_given_up(ArchivedMedia.objects.filter(task=task))
    queue = dispatch.archive_queue_for(topview_settings.processing)
    if queue is not None:
        queued = archiving.start_due(restart=queue, task_pks=[task.pk])
        return messages.SUCCESS, _("%(task)s: %(count)d file(s) queued.") % {
            "task": label,
            "count": queued,
        }
    archiving.archive_task(task.pk)
    states = ArchivedMedia.objects.filter(task=task).values_list("state", flat=True)
    missing = [state for state in states if state != MediaState.ARCHIVED]
    text = _("%(task)s: %(done)d of %(all)d file(s) archived.") % {
        "task": label,
        "done": len(states) - len(missing),
        "all": len(states),
    }
    return (messages.WARNING if missing else messages.SUCCESS), text


@admin.action(description=_("Archive media now"), permissions=["replay"])
def archive_now(
    model_admin: admin.ModelAdmin[SubmittedTask],
    request: HttpRequest,
    queryset: QuerySet[SubmittedTask],
) -> None:
    if not too_many(request, model_admin, queryset):
        run_rows(request, model_admin, queryset, archive_task_now)
