"""Tasks submitted to Topview (or first seen in a notice) and their status."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.models.counters import counter


class TaskStatus(models.TextChoices):
    QUEUED = "queued", _("Queued (not sent yet)")
    SENDING = "sending", _("Sending")
    UNCERTAIN = "uncertain", _("Uncertain (sent, answer lost)")
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
# Tasks that hold one of the account's MAX_UNFINISHED slots at Topview: on their way or
# running there. "uncertain" ones do not: they may never have reached Topview, and would
# block the queue for good (a 4007 answer tells us if they do hold a slot).
UNFINISHED_TASK_STATUSES = (TaskStatus.SENDING, *OPEN_TASK_STATUSES)


class SubmittedTaskQuerySet(models.QuerySet["SubmittedTask"]):
    def for_owner(self, owner: models.Model) -> SubmittedTaskQuerySet:
        """The tasks enqueued or submitted with ``owner=owner`` (any model instance)."""
        content_type = ContentType.objects.get_for_model(owner)
        return self.filter(owner_content_type=content_type, owner_object_id=str(owner.pk))


def owner_fields(owner: models.Model | None) -> dict[str, Any]:
    """The owner columns of a task for ``owner`` (None: no owner)."""
    if owner is None:
        return {}
    if owner.pk is None:
        raise ValueError(f"Save {owner!r} before making it a task's owner: it has no pk.")
    return {
        "owner_content_type": ContentType.objects.get_for_model(owner),
        "owner_object_id": str(owner.pk),
    }


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
    poll_count = counter(_("polls"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # What the task is for: the project's own object and a free reference. New columns have
    # a database default, so the hand-written INSERTs of processing need not name them.
    owner_content_type = models.ForeignKey(
        ContentType,
        verbose_name=_("owner type"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # topview_task_owner leads with it
    )
    owner_object_id = models.CharField(
        _("owner id"), max_length=64, blank=True, default="", db_default=""
    )
    owner = GenericForeignKey("owner_content_type", "owner_object_id")
    reference = models.CharField(
        _("reference"),
        max_length=255,
        blank=True,
        default="",
        db_default="",
        help_text=_("Free text given on submit or enqueue, e.g. your own order number."),
    )
    cost_credit = models.DecimalField(
        _("credits spent"),
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("The costCredit Topview reported in the task's result."),
    )
    # The queue (``sending``): the marker added to noticeUrl, the submits tried, when the
    # next may go, and what a person decided about an uncertain submission.
    submission = models.CharField(
        _("submission marker"),
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text=_("Added to noticeUrl's query string, to match a callback to this submission."),
    )
    send_attempts = counter(_("send attempts"), db_default=0)
    send_after = models.DateTimeField(
        _("send after"),
        null=True,
        blank=True,
        help_text=_("A queued submission is not sent before then (backoff after a 4007)."),
    )
    resolution = models.TextField(
        _("resolution"),
        blank=True,
        default="",
        db_default="",
        help_text=_("Who resent or gave up an uncertain submission, and when."),
    )

    objects = SubmittedTaskQuerySet.as_manager()

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
            # Partial, like the sender's below: a task created final from its callback (or
            # once final) holds no entry, so recording an outcome writes none here.
            models.Index(
                fields=("status", "next_poll_at"),
                condition=models.Q(status__in=POLLABLE_TASK_STATUSES),
                name="topview_task_poll_due",
            ),
            # The admin's bizType filter lists its values by a skip scan of this index.
            models.Index(fields=("biz_type",), name="topview_task_biz_type"),
            models.Index(fields=("submitted_at",), name="topview_task_submitted"),
            # The rollups count the tasks that finished in an hour (``rollups``); finishing
            # a task is not a HOT update anyway (status is in the partial indexes' tests).
            models.Index(fields=("completed_at",), name="topview_task_completed"),
            # The dashboard's open and expired tasks of the week per bizType, read from the
            # index alone; partial: a task created final from its callback adds no entry.
            models.Index(
                fields=("status", "biz_type", "submitted_at"),
                condition=models.Q(status__in=POLLABLE_TASK_STATUSES),
                name="topview_task_unfinished",
            ),
            # The admin's list of failed tasks: its count probe and its date hierarchy's
            # MIN(submitted_at) would otherwise read past every succeeded task first.
            # Partial: only a failed task (a few in a hundred) adds an entry.
            models.Index(
                fields=("submitted_at",),
                condition=models.Q(status=TaskStatus.FAIL),
                name="topview_task_failed",
            ),
            # Partial: a task without an owner or a reference (every task a callback or
            # submit() creates without one) adds no entry on the notice path.
            models.Index(
                fields=("owner_content_type", "owner_object_id"),
                condition=models.Q(owner_content_type__isnull=False),
                name="topview_task_owner",
            ),
            models.Index(
                fields=("reference",),
                condition=~models.Q(reference=""),
                name="topview_task_reference",
            ),
            # The sender's queue and its count of unfinished tasks, per account.
            models.Index(
                fields=("account", "status", "id"),
                condition=models.Q(status__in=(TaskStatus.QUEUED, *UNFINISHED_TASK_STATUSES)),
                name="topview_task_account_status",
            ),
            # A callback's marker finds its submission while that is sending or uncertain.
            models.Index(
                fields=("submission",),
                condition=models.Q(status__in=("sending", "uncertain")),
                name="topview_task_open_submission",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.biz_type} {self.task_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_TASK_STATUSES

    def media(self) -> list[tuple[str, str]]:
        """``(kind, url)`` of every output file in the latest result."""
        return biz_types.media_urls(self.biz_type, self.result)
