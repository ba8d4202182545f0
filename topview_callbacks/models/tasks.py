"""Tasks submitted to Topview (or first seen in a notice) and their status."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
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
# Tasks polling still asks about; "expired" ones only change on a late notice or "poll now".
OPEN_TASK_STATUSES = (TaskStatus.SUBMITTED, TaskStatus.RUNNING)
POLLABLE_TASK_STATUSES = (*OPEN_TASK_STATUSES, TaskStatus.EXPIRED)


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
    previous_status = models.CharField(
        _("previous status"),
        max_length=16,
        choices=TaskStatus.choices,
        blank=True,
        help_text=_("Its status before its outcome was recorded."),
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
            # task_id first: it also serves lookups by task id alone (no second index on
            # that random key); ON CONFLICT (biz_type, task_id) infers it all the same.
            models.UniqueConstraint(
                fields=("task_id", "biz_type"), name="topview_task_unique_task_id_biz_type"
            )
        ]
        indexes = [
            models.Index(fields=("status", "next_poll_at"), name="topview_task_poll_due"),
            # The admin's bizType filter lists its values by a skip scan of this index.
            models.Index(fields=("biz_type",), name="topview_task_biz_type"),
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
