"""Tasks we submitted to Topview and every notice Topview sent about them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types


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
    """What storing one delivery did: the row's id, whether this delivery created it, and
    the row's processing state after the statement."""

    notice_id: int
    created: bool
    state: str = "pending"

    @property
    def needs_restart(self) -> bool:
        """A repeated delivery of a notice nothing is processing: start it again.

        True when the stored row is still ``pending`` (its processing never started, e.g.
        the connection dropped after the INSERT committed) or was ``processing`` for longer
        than ``SWEEP_AFTER`` (its worker died), which the same statement reset to pending.
        """
        return not self.created and self.state == NoticeState.PENDING


class NoticeManager(models.Manager["Notice"]):
    def record_delivery(
        self, *, stale_before: datetime | None = None, max_attempts: int = 0, **values: Any
    ) -> Delivery:
        """Store a notice, or count one more delivery of a stored ``uuid``, in one statement.

        ``INSERT ... ON CONFLICT (uuid) DO UPDATE ... RETURNING``: a duplicate, even a
        concurrent one, never makes a second row nor an error; on autocommit the row is
        durable when this returns. Supported on PostgreSQL and SQLite (3.35+).

        With ``stale_before``, a repeated delivery of a notice left ``processing`` since
        before then with fewer than ``max_attempts`` attempts (its worker died) is put back
        to ``pending`` by the same statement, so the caller can restart it
        (``Delivery.needs_restart``) without another query.
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
        state = column("state")
        reset = ""
        if stale_before is not None:
            started, attempts = column("processing_started_at"), column("attempts")
            reset = (
                f", {state} = CASE WHEN {table}.{state} = %s AND {table}.{started} < %s "
                f"AND {table}.{attempts} < %s THEN %s ELSE {table}.{state} END"
            )
            params += [
                NoticeState.PROCESSING,
                connection.ops.adapt_datetimefield_value(stale_before),
                max_attempts,
                NoticeState.PENDING,
            ]
        sql = (
            f"INSERT INTO {table} ({', '.join(column(f.name) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({column('uuid')}) DO UPDATE SET "
            f"{count} = {table}.{count} + 1, {last} = EXCLUDED.{last}{reset} "
            f"RETURNING {column('id')}, {count}, {state}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        assert row is not None  # RETURNING always gives the row, inserted or updated
        notice_id, delivery_count, row_state = row
        return Delivery(notice_id=notice_id, created=delivery_count == 1, state=str(row_state))

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

    @property
    def error_summary(self) -> str:
        """The last non-blank line of ``last_error`` (the exception), at most 200 characters."""
        lines = [line for line in self.last_error.splitlines() if line.strip()]
        return Truncator(lines[-1].strip() if lines else "").chars(200)

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


class RejectionManager(models.Manager["RejectedDelivery"]):
    def count_one(
        self, *, reason: str, status: int, remote_addr: str, account: str, uuid: str
    ) -> None:
        """Count one rejected delivery in its minute's row, in one statement.

        ``INSERT ... ON CONFLICT (minute, reason, remote_addr) DO UPDATE SET count = count + 1``:
        a flood from one address makes one row a minute per reason, never one per request.
        """
        now = timezone.now()
        connection = connections[router.db_for_write(self.model)]
        columns = {f.name: str(f.column) for f in self.model._meta.concrete_fields}
        q = connection.ops.quote_name
        table, count = q(self.model._meta.db_table), q(columns["count"])
        names = ("minute", "reason", "remote_addr", "status", "count", "account", "last_uuid")
        updated = ("status", "account", "last_uuid", "last_seen_at")
        key = ", ".join(q(columns[name]) for name in ("minute", "reason", "remote_addr"))
        sql = (
            f"INSERT INTO {table} ({', '.join(q(columns[n]) for n in (*names, 'last_seen_at'))}) "
            f"VALUES ({', '.join(['%s'] * (len(names) + 1))}) ON CONFLICT ({key}) DO UPDATE SET "
            f"{count} = {table}.{count} + 1, "
            + ", ".join(f"{q(columns[n])} = EXCLUDED.{q(columns[n])}" for n in updated)
        )
        moment = connection.ops.adapt_datetimefield_value
        minute = now.replace(second=0, microsecond=0)
        params = [moment(minute), reason, remote_addr, status, 1, account, uuid, moment(now)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


class RejectedDelivery(models.Model):
    """How many deliveries the endpoint refused in one minute, for one reason, from one address."""

    minute = models.DateTimeField(_("minute"))
    reason = models.CharField(_("reason"), max_length=32)
    remote_addr = models.CharField(_("remote address"), max_length=45, blank=True)
    status = models.PositiveSmallIntegerField(_("HTTP status"))
    count = models.PositiveIntegerField(_("deliveries"), default=1)
    account = models.CharField(
        _("account"), max_length=64, blank=True, help_text=_("Of the last one, when known.")
    )
    last_uuid = models.CharField(
        _("last uuid"), max_length=128, blank=True, help_text=_("Of the last one, if readable.")
    )
    last_seen_at = models.DateTimeField(_("last seen at"), default=timezone.now)

    objects = RejectionManager()

    class Meta:
        verbose_name = _("rejected delivery")
        verbose_name_plural = _("rejected deliveries")
        ordering = ("-minute", "reason")
        constraints = [
            models.UniqueConstraint(
                fields=("minute", "reason", "remote_addr"), name="topview_rejection_minute"
            )
        ]

    def __str__(self) -> str:
        return f"{self.count} x {self.reason} ({self.status}) from {self.remote_addr or '?'}"
