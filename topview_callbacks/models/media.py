"""Output files of tasks, archived (or to be) into the project's storage."""

from __future__ import annotations

import logging
from typing import Any, cast

from django.core.files.storage import Storage, storages
from django.db import models
from django.utils import timezone
from django.utils.functional import LazyObject, empty
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.conf import topview_settings
from topview_callbacks.models.notices import Notice, NoticeSource
from topview_callbacks.models.tasks import SubmittedTask

logger = logging.getLogger(__name__)


class MediaState(models.TextChoices):
    PENDING = "pending", _("Pending")
    ARCHIVED = "archived", _("Archived")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Expired (the URL no longer works)")
    REFUSED = "refused", _("Refused")


# States after which nothing more happens unless an operator retries.
GIVEN_UP_MEDIA_STATES = (MediaState.FAILED, MediaState.EXPIRED, MediaState.REFUSED)


class _ArchiveStorage(LazyObject):  # type: ignore[type-arg]  # generic in the stubs only
    """``STORAGES[ARCHIVE_STORAGE]``, looked up again after either setting changes (tests'
    ``override_settings``): a FileField resolves its storage only once, at import."""

    def _setup(self) -> None:
        self._wrapped = storages[topview_settings.archive_storage]


_archive_storage = _ArchiveStorage()


def archive_storage() -> Storage:
    """The storage archived media are written to (``ARCHIVE_STORAGE``)."""
    return cast(Storage, _archive_storage)


def reset_archive_storage(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver (connected in ``AppConfig.ready``)."""
    if setting in ("STORAGES", "TOPVIEW_CALLBACKS"):
        _archive_storage._wrapped = empty  # type: ignore[assignment]


class ArchivedMediaManager(models.Manager["ArchivedMedia"]):
    def add_for_task(self, task: SubmittedTask, notice: Notice | None = None) -> int:
        """A pending row per output file of the task's result (ARCHIVE_KINDS), for the first
        ARCHIVE_MAX_FILES of them; returns how many are new. Idempotent: ``(task, kind,
        index)`` is unique, repeats are ignored."""
        kinds = set(topview_settings.archive_kinds)
        outputs = [
            (kind, index, url)
            for kind, index, url in biz_types.numbered_media(task.media())
            if kind in kinds
        ]
        limit = topview_settings.archive_max_files
        if len(outputs) > limit:
            # A result is unsigned: it may name thousands of URLs, each a row, a download
            # and a line on the task's page. The first ones are kept, in the table's order.
            logger.warning(
                "Task %s %r names %s output files; only the first %s are archived "
                "(ARCHIVE_MAX_FILES)",
                task.biz_type,
                task.task_id,
                len(outputs),
                limit,
            )
            outputs = outputs[:limit]
        # A polled result, or one VERIFY_WITH_QUERY verified, is Topview's own answer:
        # archive_sources need not ask again which URLs to fetch.
        from_topview = notice is not None and (
            notice.source == NoticeSource.POLL or topview_settings.verify_with_query
        )
        confirmed_at = timezone.now() if from_topview else None
        rows = [
            ArchivedMedia(
                task=task,
                notice=notice,
                kind=kind,
                index=index,
                source_url=url,
                confirmed_at=confirmed_at,
            )
            for kind, index, url in outputs
        ]
        before = self.filter(task=task).count()
        self.bulk_create(rows, ignore_conflicts=True)
        return self.filter(task=task).count() - before


class ArchivedMedia(models.Model):
    """One output file of a task, copied (or to be copied) into the project's storage."""

    task = models.ForeignKey(
        SubmittedTask,
        verbose_name=_("submitted task"),
        related_name="archived_media",
        # Deleting a task must not orphan its files unnoticed: pruning deletes them first,
        # and only when asked to (``topview_prune --delete-files``).
        on_delete=models.PROTECT,
    )
    notice = models.ForeignKey(
        Notice,
        verbose_name=_("notice"),
        related_name="archived_media",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text=_("The notice whose outcome named this file."),
    )
    kind = models.CharField(_("kind"), max_length=16, help_text=_("video, image or audio"))
    index = models.PositiveIntegerField(_("index"), help_text=_("Its position among its kind."))
    source_url = models.TextField(_("source URL"), help_text=_("Where Topview serves it."))
    file = models.FileField(_("stored file"), storage=archive_storage, max_length=500, blank=True)
    size = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    content_type = models.CharField(_("content type"), max_length=255, blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=MediaState.choices, default=MediaState.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    claimed_at = models.DateTimeField(
        _("claimed at"),
        null=True,
        blank=True,
        help_text=_("When a worker last showed it is downloading this file."),
    )
    claim = models.CharField(_("claim"), max_length=32, blank=True)
    partial_name = models.CharField(
        _("partial file"),
        max_length=500,
        blank=True,
        help_text=_("Where the current attempt writes before the file gets its final name."),
    )
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    confirmed_at = models.DateTimeField(
        _("confirmed at"),
        null=True,
        blank=True,
        help_text=_(
            "When Topview's own answer about the task named this URL (ARCHIVE_CONFIRM_URLS): "
            "only such URLs are fetched."
        ),
    )
    confirming_at = models.DateTimeField(
        _("confirming since"),
        null=True,
        blank=True,
        help_text=_(
            "On a task's first row: since when one worker has been asking Topview about the "
            "task's URLs (the others wait for its answer)."
        ),
    )
    archived_at = models.DateTimeField(_("archived at"), null=True, blank=True)

    objects = ArchivedMediaManager()

    class Meta:
        verbose_name = _("archived media")
        verbose_name_plural = _("archived media")
        ordering = ("task", "kind", "index")
        constraints = [
            models.UniqueConstraint(
                fields=("task", "kind", "index"), name="topview_media_unique_task_kind_index"
            )
        ]
        indexes = [
            models.Index(fields=("state", "next_attempt_at"), name="topview_media_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.index} of {self.task_id} ({self.state})"
