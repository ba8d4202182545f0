"""Tasks we submitted to Topview and every notice Topview sent about them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.core.files.storage import Storage, storages
from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.functional import LazyObject, empty
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.conf import topview_settings


class TaskStatus(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    RUNNING = "running", _("Running")
    SUCCESS = "success", _("Success")
    FAIL = "fail", _("Fail")
    EXPIRED = "expired", _("Expired (no outcome in time)")


# An outcome that nothing may change any more; "expired" is not one: a late outcome may follow.
FINAL_TASK_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAIL})


class SubmittedTask(models.Model):
    """One Topview task, submitted through the client or first seen in a notice."""

    account = models.CharField(_("account"), max_length=64, default="default")
    biz_type = models.CharField(_("bizType"), max_length=64)
    task_id = models.CharField(_("task id"), max_length=128)
    notice_uuid = models.CharField(
        _("notice uuid"),
        max_length=128,
        blank=True,
        help_text=_("The noticeUuid Topview returned on submit; the uuid of its callback."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.SUBMITTED
    )
    request_payload = models.JSONField(
        _("request payload"),
        default=dict,
        blank=True,
        help_text=_("What was submitted, no secrets."),
    )
    result = models.JSONField(_("result"), null=True, blank=True)
    error_message = models.TextField(_("error message"), blank=True)
    submitted_at = models.DateTimeField(_("submitted at"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    last_polled_at = models.DateTimeField(_("last polled at"), null=True, blank=True)
    next_poll_at = models.DateTimeField(
        _("next poll at"),
        null=True,
        blank=True,
        help_text=_("When polling should query this task if no notice has come by then."),
    )
    poll_count = models.PositiveIntegerField(_("polls"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("submitted task")
        verbose_name_plural = _("submitted tasks")
        ordering = ("-submitted_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("biz_type", "task_id"), name="topview_task_unique_biz_type_task_id"
            )
        ]
        indexes = [
            models.Index(fields=("status", "next_poll_at"), name="topview_task_poll_due"),
            models.Index(fields=("task_id",), name="topview_task_task_id"),
            models.Index(fields=("submitted_at",), name="topview_task_submitted"),
        ]

    def __str__(self) -> str:
        return f"{self.biz_type} {self.task_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_TASK_STATUSES

    def media(self) -> list[tuple[str, str]]:
        """``(kind, url)`` of every output file in the latest result."""
        return biz_types.media_urls(self.biz_type, self.result)


class NoticeState(models.TextChoices):
    PENDING = "pending", _("Pending")
    PROCESSING = "processing", _("Processing")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    DUPLICATE = "duplicate", _("Duplicate outcome (not fired)")
    IGNORED = "ignored", _("Ignored")


class NoticeSource(models.TextChoices):
    CALLBACK = "callback", _("Callback")
    POLL = "poll", _("Poll")


@dataclass(frozen=True)
class Delivery:
    """What storing one delivery did: the row's id, and whether this delivery created it."""

    notice_id: int
    created: bool


class NoticeManager(models.Manager["Notice"]):
    def record_delivery(self, **values: Any) -> Delivery:
        """Store a notice, or count one more delivery of a stored ``uuid``, in one statement.

        ``INSERT ... ON CONFLICT (uuid) DO UPDATE ... RETURNING``: a duplicate, even a
        concurrent one, never makes a second row nor an error; on autocommit the row is
        durable when this returns. Supported on PostgreSQL and SQLite (3.35+).
        """
        model = self.model
        connection = connections[router.db_for_write(model)]
        column = self._column_sql(connection)
        now = timezone.now()
        values.setdefault("received_at", now)
        values.setdefault("last_delivery_at", values["received_at"])
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        params = [
            f.get_db_prep_save(values[f.name] if f.name in values else f.get_default(), connection)
            for f in fields
        ]
        table = connection.ops.quote_name(model._meta.db_table)
        count, last = column("delivery_count"), column("last_delivery_at")
        sql = (
            f"INSERT INTO {table} ({', '.join(column(f.name) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({column('uuid')}) DO UPDATE SET "
            f"{count} = {table}.{count} + 1, {last} = EXCLUDED.{last} "
            f"RETURNING {column('id')}, {count}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        assert row is not None  # RETURNING always gives the row, inserted or updated
        notice_id, delivery_count = row
        return Delivery(notice_id=notice_id, created=delivery_count == 1)

    def claim(
        self,
        notice_id: int,
        states: Iterable[str],
        stale_before: datetime | None = None,
        *,
        retry_failed_below: int | None = None,
    ) -> Notice | None:
        """Move a notice in one of ``states`` to processing, count the attempt, and return it.

        With ``stale_before``, a notice left processing since before then (its worker died)
        is claimed too; with ``retry_failed_below``, a failed notice with fewer attempts than
        that. None when the notice is in none of those states: another worker has it, or it
        is done. One ``UPDATE ... RETURNING``, so the claim and the read are one round trip;
        of two workers claiming at once, exactly one gets the row.
        """
        connection = connections[router.db_for_write(self.model)]
        column = self._column_sql(connection)
        table = connection.ops.quote_name(self.model._meta.db_table)
        state, attempts = column("state"), column("attempts")
        started = column("processing_started_at")
        moment = connection.ops.adapt_datetimefield_value
        states = list(states)
        claimable: list[str] = []
        claimable_params: list[Any] = []
        if states:
            claimable.append(f"{state} IN ({', '.join(['%s'] * len(states))})")
            claimable_params += states
        if stale_before is not None:
            claimable.append(f"({state} = %s AND {started} < %s)")
            claimable_params += [NoticeState.PROCESSING, moment(stale_before)]
        if retry_failed_below is not None:
            claimable.append(f"({state} = %s AND {attempts} < %s)")
            claimable_params += [NoticeState.FAILED, retry_failed_below]
        if not claimable:
            return None
        sql = (
            f"UPDATE {table} SET {state} = %s, {attempts} = {attempts} + 1, {started} = %s "
            f"WHERE {column('id')} = %s AND ({' OR '.join(claimable)}) RETURNING *"
        )
        params = [NoticeState.PROCESSING, moment(timezone.now()), notice_id, *claimable_params]
        return next(iter(self.raw(sql, params).using(connection.alias)), None)

    def _column_sql(self, connection: BaseDatabaseWrapper) -> Callable[[str], str]:
        """A function giving the quoted column of a field, for the raw statements above."""
        columns = {f.name: str(f.column) for f in self.model._meta.concrete_fields}
        return lambda name: connection.ops.quote_name(columns[name])


class Notice(models.Model):
    """One task outcome as Topview sent it (callback) or as we fetched it (poll)."""

    uuid = models.CharField(_("uuid"), max_length=128, unique=True)
    account = models.CharField(_("account"), max_length=64, default="default")
    biz_type = models.CharField(_("bizType"), max_length=64)
    task_id = models.CharField(_("task id"), max_length=128)
    status = models.CharField(_("status"), max_length=16, help_text=_("success or fail"))
    error_message = models.TextField(_("error message"), blank=True)
    result = models.JSONField(
        _("result"), null=True, blank=True, help_text=_("The query-task result, parsed.")
    )
    raw_body = models.TextField(_("raw body"), blank=True, help_text=_("Exactly as received."))
    headers = models.JSONField(
        _("headers"), default=dict, blank=True, help_text=_("Request headers, secrets removed.")
    )
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    source = models.CharField(
        _("source"), max_length=16, choices=NoticeSource.choices, default=NoticeSource.CALLBACK
    )
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    last_delivery_at = models.DateTimeField(_("last delivery at"), default=timezone.now)
    delivery_count = models.PositiveIntegerField(_("deliveries"), default=1)
    state = models.CharField(
        _("processing state"),
        max_length=16,
        choices=NoticeState.choices,
        default=NoticeState.PENDING,
    )
    attempts = models.PositiveIntegerField(_("processing attempts"), default=0)
    last_error = models.TextField(
        _("last error"), blank=True, help_text=_("Traceback of the last failed attempt.")
    )
    processing_started_at = models.DateTimeField(_("processing started at"), null=True, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    submitted_task = models.ForeignKey(
        SubmittedTask,
        verbose_name=_("submitted task"),
        related_name="notices",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
    )

    objects = NoticeManager()

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ("-received_at", "-id")
        permissions = [
            ("replay_notice", _("Can reprocess notices, poll Topview and mark notices ignored"))
        ]
        indexes = [
            models.Index(fields=("state", "received_at"), name="topview_notice_state"),
            models.Index(fields=("received_at",), name="topview_notice_received"),
            models.Index(fields=("biz_type", "task_id"), name="topview_notice_task"),
            models.Index(fields=("task_id",), name="topview_notice_task_id"),
        ]

    def __str__(self) -> str:
        return f"{self.biz_type} {self.task_id} {self.status} ({self.uuid})"

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.SUCCESS

    def log_context(self) -> dict[str, Any]:
        """``extra=`` for a log line about this notice: the fields log aggregators filter on."""
        return {
            "topview_notice_id": self.pk,
            "topview_notice_uuid": self.uuid,
            "topview_task_id": self.task_id,
            "topview_biz_type": self.biz_type,
            "topview_account": self.account,
        }

    def media(self) -> list[tuple[str, str]]:
        """``(kind, url)`` of every output file in this notice's result."""
        return biz_types.media_urls(self.biz_type, self.result)


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
        """A pending row per output file of the task's result (ARCHIVE_KINDS); returns how
        many are new. Idempotent: ``(task, kind, index)`` is unique, repeats are ignored."""
        kinds = set(topview_settings.archive_kinds)
        rows = [
            ArchivedMedia(task=task, notice=notice, kind=kind, index=index, source_url=url)
            for kind, index, url in biz_types.numbered_media(task.media())
            if kind in kinds
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
