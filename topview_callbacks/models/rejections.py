"""Deliveries the endpoint refused, counted per minute, reason and address."""

from __future__ import annotations

from django.db import connections, models, router
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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
