"""Deliveries the endpoint refused, counted per minute, reason and source."""

from __future__ import annotations

import ipaddress
from functools import cache

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

#: Distinct addresses counted on rows of their own in one minute (all reasons together) ...
ADDRESSES_PER_MINUTE = 50
#: ... then each new one on its network's row (a /24, or an IPv6 /64: one host's), until the
#: minute has this many rows; past that, on one row per reason: ``OTHER_SOURCES``.
ROWS_PER_MINUTE = 100
OTHER_SOURCES = "other"
IPV4_PREFIX, IPV6_PREFIX = 24, 64


def network_of(address: str) -> str:
    """The network ``address`` is counted in once its minute is busy ("203.0.113.0/24",
    "2001:db8:1:2::/64"); anything that is not an address stays as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    bits, prefix = (32, IPV4_PREFIX) if ip.version == 4 else (128, IPV6_PREFIX)
    host_bits = (1 << (bits - prefix)) - 1
    # Masking the integer: ipaddress.ip_network() costs ten times as much, per refusal.
    return f"{type(ip)(int(ip) & ~host_bits)}/{prefix}"


class RejectionManager(models.Manager["RejectedDelivery"]):
    def count_one(
        self, *, reason: str, status: int, remote_addr: str, account: str, uuid: str
    ) -> None:
        """Count one rejected delivery in its minute's row, in one statement.

        ``INSERT ... ON CONFLICT (minute, reason, remote_addr) DO UPDATE SET count = count + 1``:
        a flood from one address makes one row a minute per reason, never one per request.
        A flood from many addresses (an IPv6 /64 holds as many as anyone wants) is bounded
        too: the statement itself picks the row, the address's own while the minute has
        fewer than ``ADDRESSES_PER_MINUTE`` rows, else its network's while it has fewer than
        ``ROWS_PER_MINUTE``, else ``OTHER_SOURCES``.
        """
        now = timezone.now()
        connection = connections[router.db_for_write(self.model)]
        moment = connection.ops.adapt_datetimefield_value
        minute = moment(now.replace(second=0, microsecond=0))
        network = network_of(remote_addr)
        params = [
            *(minute, reason),
            *(minute, reason, remote_addr, remote_addr),  # the address has its row: keep it
            *(minute, ADDRESSES_PER_MINUTE, remote_addr),
            *(minute, reason, network, network),  # its network has a row: keep it
            *(minute, ROWS_PER_MINUTE, network),
            OTHER_SOURCES,
            *(status, 1, account, uuid, moment(now)),
        ]
        with connection.cursor() as cursor:
            cursor.execute(_count_statement(connection.alias), params)


@cache
def _count_statement(alias: str) -> str:
    """``count_one``'s SQL, built once per database."""
    connection: BaseDatabaseWrapper = connections[alias]
    model = RejectedDelivery
    columns = {f.name: str(f.column) for f in model._meta.concrete_fields}
    q = connection.ops.quote_name
    table, count, source = q(model._meta.db_table), q(columns["count"]), q(columns["remote_addr"])
    at, why = q(columns["minute"]), q(columns["reason"])
    names = ("minute", "reason", "remote_addr", "status", "count", "account", "last_uuid")
    updated = ("status", "account", "last_uuid", "last_seen_at")
    key = ", ".join(q(columns[name]) for name in ("minute", "reason", "remote_addr"))
    has_row = f"EXISTS (SELECT 1 FROM {table} WHERE {at} = %s AND {why} = %s AND {source} = %s)"
    rows = f"(SELECT COUNT(*) FROM {table} WHERE {at} = %s)"
    chosen = (
        f"CASE WHEN {has_row} THEN %s WHEN {rows} < %s THEN %s "
        f"WHEN {has_row} THEN %s WHEN {rows} < %s THEN %s ELSE %s END"
    )
    return (
        f"INSERT INTO {table} ({', '.join(q(columns[n]) for n in (*names, 'last_seen_at'))}) "
        f"VALUES (%s, %s, {chosen}, %s, %s, %s, %s, %s) ON CONFLICT ({key}) DO UPDATE SET "
        f"{count} = {table}.{count} + 1, "
        + ", ".join(f"{q(columns[n])} = EXCLUDED.{q(columns[n])}" for n in updated)
    )


class RejectedDelivery(models.Model):
    """How many deliveries the endpoint refused in one minute, for one reason, from one
    address (or, in a busy minute, one network, or all other sources)."""

    minute = models.DateTimeField(_("minute"))
    reason = models.CharField(_("reason"), max_length=32)
    # An address; in a busy minute a network ("203.0.113.0/24") or OTHER_SOURCES.
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
