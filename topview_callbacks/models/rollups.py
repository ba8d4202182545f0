"""Counts kept per hour for the dashboard (``rollups``): small tables, a few hundred rows a
week whatever the volume. ``hour`` is the start of the period counted (UTC), ``minutes``
its length: 60 for settled hours, ``rollups.SLICE`` for the slices of the hour being
filled. The tables are named ``topview_callbacks_rollup_*``, apart from the raw ones."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RollupHour(models.Model):
    """One period whose counts are kept: its rows in the three tables below are complete.
    ``due`` is how many of its notices were still due (pending or retrying) when they were
    counted; when that number changes, the hour is counted again."""

    hour = models.DateTimeField(_("hour"))
    minutes = models.PositiveSmallIntegerField(_("minutes"), default=60)
    due = models.PositiveIntegerField(_("due notices when counted"), default=0)
    counted_at = models.DateTimeField(_("counted at"), auto_now=True)

    class Meta:
        db_table = "topview_callbacks_rollup_hour"
        constraints = [
            models.UniqueConstraint(fields=("hour", "minutes"), name="topview_rolluphour_unique")
        ]
        verbose_name = _("rollup hour")
        verbose_name_plural = _("rollup hours")

    def __str__(self) -> str:
        return self.hour.isoformat()


class NoticeHour(models.Model):
    """Notices received in ``hour`` per ``state`` (``retrying``: failed, a retry scheduled)."""

    hour = models.DateTimeField(_("hour"))
    minutes = models.PositiveSmallIntegerField(_("minutes"), default=60)
    state = models.CharField(_("state"), max_length=16)
    count = models.PositiveBigIntegerField(_("count"))

    class Meta:
        db_table = "topview_callbacks_rollup_notices"
        constraints = [
            models.UniqueConstraint(
                fields=("hour", "minutes", "state"), name="topview_noticehour_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour.isoformat()} {self.state}: {self.count}"


class TaskHour(models.Model):
    """Tasks that got their final status in ``hour``, per bizType (unknown ones as "other")
    and status: how many, and how many per turnaround bucket (``rollups.bucket``), a
    sparse ``{"bucket": count}``. One row per bizType and status, however spread the
    turnarounds: a week is a few thousand rows."""

    hour = models.DateTimeField(_("hour"))
    minutes = models.PositiveSmallIntegerField(_("minutes"), default=60)
    biz_type = models.CharField(_("bizType"), max_length=64)
    status = models.CharField(_("status"), max_length=16)
    count = models.PositiveBigIntegerField(_("count"))
    buckets = models.JSONField(_("turnaround buckets"), default=dict)

    class Meta:
        db_table = "topview_callbacks_rollup_tasks"
        constraints = [
            models.UniqueConstraint(
                fields=("hour", "minutes", "biz_type", "status"),
                name="topview_taskhour_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour.isoformat()} {self.biz_type} {self.status}: {self.count}"


class CreditHour(models.Model):
    """Credits spent by the tasks of one account that finished in ``hour``."""

    hour = models.DateTimeField(_("hour"))
    minutes = models.PositiveSmallIntegerField(_("minutes"), default=60)
    account = models.CharField(_("account"), max_length=64)
    credits = models.DecimalField(_("credits"), max_digits=20, decimal_places=4)

    class Meta:
        db_table = "topview_callbacks_rollup_credits"
        constraints = [
            models.UniqueConstraint(
                fields=("hour", "minutes", "account"), name="topview_credithour_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour.isoformat()} {self.account}: {self.credits}"
