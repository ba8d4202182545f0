"""Every notice Topview sent (or polling fetched)."""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.conf import topview_settings
from topview_callbacks.models.counters import counter
from topview_callbacks.models.tasks import SubmittedTask, TaskStatus


def partitioned_notices(conn: BaseDatabaseWrapper) -> bool:
    """Whether notices are partitioned on this database (PARTITION_NOTICES, PostgreSQL):
    their uuids are then kept unique in NoticeKey."""
    return conn.vendor == "postgresql" and topview_settings.partition_notices


def error_summary(last_error: str) -> str:
    """The last non-blank line of a traceback (the exception), at most 200 characters."""
    lines = [line for line in last_error.splitlines() if line.strip()]
    return Truncator(lines[-1].strip() if lines else "").chars(200)


class NoticeState(models.TextChoices):
    # Waiting for its first attempt, or for a retry at next_attempt_at (last_error says why).
    PENDING = "pending", _("Pending")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    DUPLICATE = "duplicate", _("Duplicate outcome (not fired)")
    IGNORED = "ignored", _("Ignored")


class NoticeSource(models.TextChoices):
    CALLBACK = "callback", _("Callback")
    POLL = "poll", _("Poll")


class Notice(models.Model):
    """One task outcome as Topview sent it (callback) or as we fetched it (poll)."""

    # Unique through Meta.constraints, not unique=True: on PostgreSQL Django would add a
    # second index on it (varchar_pattern_ops, for LIKE) that no query here uses.
    uuid = models.CharField(_("uuid"), max_length=128)
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
    state = models.CharField(
        _("processing state"),
        max_length=16,
        choices=NoticeState.choices,
        default=NoticeState.PENDING,
    )
    attempts = counter(
        _("processing attempts"), help_text=_("Attempts started, crashed ones included.")
    )
    last_error = models.TextField(
        _("last error"),
        blank=True,
        help_text=_("Why the last attempt failed: a receiver's traceback, or a sentence."),
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("A failed or unconfirmed notice is tried again from then on."),
    )
    claimed_at = models.DateTimeField(
        _("claimed at"),
        null=True,
        blank=True,
        help_text=_("When its latest attempt started."),
    )
    # The attempt's token: what the processing transaction locks (see processing/claims.py).
    claim = models.CharField(_("claim"), max_length=32, blank=True, editable=False)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    submitted_task = models.ForeignKey(
        SubmittedTask,
        verbose_name=_("submitted task"),
        related_name="notices",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
    )

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ("-received_at", "-id")
        permissions = [
            ("replay_notice", _("Can reprocess notices, poll Topview and mark notices ignored"))
        ]
        constraints = [models.UniqueConstraint(fields=("uuid",), name="topview_notice_unique_uuid")]
        # Only what a query needs (docs/capacity.md): every index on a random key (uuid,
        # task id) costs a page image in the WAL per notice once the table is big.
        indexes = [
            # Claims, the sweep, health and the state filter; processed notices (nearly
            # all of them) are left out, so finishing one adds no entry here.
            models.Index(
                fields=("state", "received_at"),
                name="topview_notice_unsettled",
                condition=~models.Q(state=NoticeState.PROCESSED),
            ),
            # Notices an attempt may start on (claims, drains, the sweep): pending ones
            # and failed ones with a retry to come, never the failed ones kept for months.
            models.Index(
                fields=("received_at",),
                name="topview_notice_due",
                condition=models.Q(state=NoticeState.PENDING)
                | models.Q(state=NoticeState.FAILED, next_attempt_at__isnull=False),
            ),
            models.Index(fields=("received_at",), name="topview_notice_received"),
            # The admin's bizType filter lists its values by a skip scan of this index.
            models.Index(fields=("biz_type",), name="topview_notice_biz_type"),
            models.Index(fields=("task_id",), name="topview_notice_task_id"),
        ]

    def __str__(self) -> str:
        return f"{self.biz_type} {self.task_id} {self.status} ({self.uuid})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Partitioned notices (PARTITION_NOTICES): a new notice's key first, in the same
        transaction; a uuid stored already fails here, as the unique constraint would."""
        using = kwargs.get("using") or router.db_for_write(Notice, instance=self)
        if not self._state.adding or not partitioned_notices(connections[using]):
            super().save(*args, **kwargs)
            return
        with transaction.atomic(using=using):
            NoticeKey.objects.using(using).create(uuid=self.uuid, received_at=self.received_at)
            super().save(*args, **kwargs)

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.SUCCESS

    @property
    def error_summary(self) -> str:
        """The last non-blank line of ``last_error`` (the exception), at most 200 characters."""
        return error_summary(self.last_error)

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


class NoticeKey(models.Model):
    """The uuid of a stored notice, when notices are partitioned (``PARTITION_NOTICES``).

    PostgreSQL keeps no unique constraint on uuid alone across a table partitioned by
    month, so this narrow table holds it: the store statement writes the key and the
    notice together, and a trigger keeps the keys of notices written any other way
    (docs/decisions.md). Empty otherwise.
    """

    uuid = models.CharField(_("uuid"), max_length=128, primary_key=True)
    # Where its notice is: the partition key, so a repeat probes one partition.
    received_at = models.DateTimeField(_("received at"))

    class Meta:
        verbose_name = _("notice key")
        verbose_name_plural = _("notice keys")
        default_permissions = ()

    def __str__(self) -> str:
        return self.uuid
