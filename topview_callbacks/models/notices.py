"""Every notice Topview sent (or polling fetched), and the two raw statements of the hot path."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.models.columns import db_value
from topview_callbacks.models.tasks import SubmittedTask, TaskStatus


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
        connection = connections[router.db_for_write(self.model)]
        sql = _delivery_statement(connection.alias, stale_before is not None)
        params = self.delivery_params(connection, values, stale_before, max_attempts)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        assert row is not None  # RETURNING always gives the row, inserted or updated
        notice_id, delivery_count, row_state = row
        return Delivery(notice_id=notice_id, created=delivery_count == 1, state=str(row_state))

    def delivery_params(
        self,
        connection: BaseDatabaseWrapper,
        values: dict[str, Any],
        stale_before: datetime | None,
        max_attempts: int,
        expressions: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """The parameters of ``delivery_statement`` for one delivery, in its order."""
        expressions = expressions or {}
        if "received_at" not in values:
            values["received_at"] = timezone.now()
        values.setdefault("last_delivery_at", values["received_at"])
        params = [
            db_value(f, values[f.name] if f.name in values else f.get_default(), connection)
            for f in self.model._meta.concrete_fields
            if not f.primary_key and f.name not in expressions
        ]
        if stale_before is not None:
            params += [
                NoticeState.PROCESSING,
                connection.ops.adapt_datetimefield_value(stale_before),
                max_attempts,
                NoticeState.PENDING,
            ]
        return params

    def delivery_statement(
        self,
        connection: BaseDatabaseWrapper,
        reset: bool,
        expressions: Mapping[str, str] | None = None,
    ) -> str:
        """``record_delivery``'s SQL; ``reset`` when given ``stale_before``. ``expressions``
        gives SQL for some columns' values instead of parameters (``outcomes`` links a new
        notice to its task)."""
        expressions = expressions or {}
        column = self._column_sql(connection)
        fields = [f for f in self.model._meta.concrete_fields if not f.primary_key]
        placeholders = [expressions.get(f.name, "%s") for f in fields]
        table = connection.ops.quote_name(self.model._meta.db_table)
        count, last = column("delivery_count"), column("last_delivery_at")
        state = column("state")
        restart = ""
        if reset:
            started, attempts = column("processing_started_at"), column("attempts")
            restart = (
                f", {state} = CASE WHEN {table}.{state} = %s AND {table}.{started} < %s "
                f"AND {table}.{attempts} < %s THEN %s ELSE {table}.{state} END"
            )
        return (
            f"INSERT INTO {table} ({', '.join(column(f.name) for f in fields)}) "
            f"VALUES ({', '.join(placeholders)}) "
            f"ON CONFLICT ({column('uuid')}) DO UPDATE SET "
            f"{count} = {table}.{count} + 1, {last} = EXCLUDED.{last}{restart} "
            f"RETURNING {column('id')}, {count}, {state}"
        )

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
        claimable = self.claimable_sql(connection, states, stale_before, retry_failed_below)
        if claimable is None:
            return None
        condition, condition_params = claimable
        column = self._column_sql(connection)
        table = connection.ops.quote_name(self.model._meta.db_table)
        state, attempts = column("state"), column("attempts")
        started = column("processing_started_at")
        sql = (
            f"UPDATE {table} SET {state} = %s, {attempts} = {attempts} + 1, {started} = %s "
            f"WHERE {column('id')} = %s AND ({condition}) RETURNING *"
        )
        moment = connection.ops.adapt_datetimefield_value(timezone.now())
        params = [NoticeState.PROCESSING, moment, notice_id, *condition_params]
        return next(iter(self.raw(sql, params).using(connection.alias)), None)

    def claimable_sql(
        self,
        connection: BaseDatabaseWrapper,
        states: Iterable[str],
        stale_before: datetime | None,
        retry_failed_below: int | None,
    ) -> tuple[str, list[Any]] | None:
        """The condition ``claim`` puts on a notice's row; None when nothing is claimable."""
        column = self._column_sql(connection)
        state, attempts = column("state"), column("attempts")
        started = column("processing_started_at")
        states = list(states)
        claimable: list[str] = []
        params: list[Any] = []
        if states:
            claimable.append(f"{state} IN ({', '.join(['%s'] * len(states))})")
            params += states
        if stale_before is not None:
            claimable.append(f"({state} = %s AND {started} < %s)")
            params += [
                NoticeState.PROCESSING,
                connection.ops.adapt_datetimefield_value(stale_before),
            ]
        if retry_failed_below is not None:
            claimable.append(f"({state} = %s AND {attempts} < %s)")
            params += [NoticeState.FAILED, retry_failed_below]
        return (" OR ".join(claimable), params) if claimable else None

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


@functools.cache
def _delivery_statement(alias: str, reset: bool) -> str:
    """``record_delivery``'s SQL, built once per database: it is the same for every
    delivery, and building it costs about as much as running it."""
    return Notice.objects.delivery_statement(connections[alias], reset)
