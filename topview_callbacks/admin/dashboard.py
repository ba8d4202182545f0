"""The "Topview pipeline" dashboard: an admin view over ``dashboard_stats`` and ``charts``.

Served at ``admin/topview_callbacks/notice/dashboard/`` (``NoticeAdmin.get_urls``), to staff
who may view notices. Every figure links to the changelist that lists it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from topview_callbacks import credit, health, rollups
from topview_callbacks.admin import charts, dashboard_stats, spend
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import OPEN_TASK_STATUSES

TURNAROUND_LABELS = (
    "<1 min",
    "1-2 min",
    "2-5 min",
    "5-10 min",
    "10-30 min",
    "30-60 min",
    "1-3 h",
    "3-12 h",
    "12-24 h",
    ">24 h",
)


def changelist(model: str, **filters: Any) -> str:
    """The admin changelist of ``model`` ("notice" or "submittedtask") filtered by ``filters``."""
    url = reverse(f"admin:topview_callbacks_{model}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def dashboard_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    day_ago = now - timedelta(hours=24)
    measurements = health.measure(now)
    grace = timedelta(seconds=topview_settings.health["OVERDUE_GRACE_SECONDS"])
    failed_24h, failure_reasons = dashboard_stats.failures(day_ago)
    # The settled hours nobody counted yet (no sweep scheduled, a replay): counted here.
    rollups.fill(min(now - dashboard_stats.WINDOW, spend.first_moment(now)), now)
    hours, series = dashboard_stats.hourly(now)
    turnaround = dashboard_stats.turnaround(now)
    states = [
        (row, changelist("notice", state__exact=row.state))
        for row in dashboard_stats.state_counts(measurements)
    ]
    daily = _daily(hours, series)
    spent = spend.spend(now)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Topview pipeline"),
        "opts": model_admin.model._meta,
        "now": now,
        "states": states,
        "findings": health.evaluate(measurements),
        "oldest": dashboard_stats.oldest_waiting(),
        "failed_24h": failed_24h,
        "failure_reasons": failure_reasons,
        "failed_url": changelist("notice", state__exact="failed", received_at__gte=_iso(day_ago)),
        "rejections": dashboard_stats.rejections(day_ago),
        "overdue": measurements.overdue_tasks,
        "overdue_url": changelist(
            "submittedtask",
            status__in=",".join(OPEN_TASK_STATUSES),
            next_poll_at__lt=_iso(now - grace),
        ),
        "expired": dashboard_stats.expired_tasks(),
        "expired_url": changelist("submittedtask", status__exact="expired"),
        "biz_types": turnaround.per_biz_type,
        "credits": credit.credits(),
        "hourly_chart": charts.stacked_hours(
            hours,
            series,
            title=_("Notices per hour by outcome, last 7 days"),
            desc=_("Stacked bars: processed, failed, waiting, duplicate or ignored."),
        ),
        "daily": daily,
        "outcomes": list(dashboard_stats.OUTCOMES),
        "legend": [(name, charts.COLOURS[name]) for name in dashboard_stats.OUTCOMES],
        "turnaround_chart": charts.bars(
            TURNAROUND_LABELS,
            turnaround.buckets,
            title=_("Turnaround of tasks finished in the last 7 days"),
            desc=_(
                "How many of the tasks that got their outcome in the last 7 days got it "
                "within each span after submission."
            ),
        ),
        "turnaround_rows": list(zip(TURNAROUND_LABELS, turnaround.buckets, strict=True)),
        "spend": spent,
        "spend_rows": list(zip(spent.days, spent.per_day, strict=True)),
        "spend_chart": charts.bars(
            [day.strftime("%m-%d") for day in spent.days],
            [int(value.to_integral_value()) for value in spent.per_day],
            title=_("Credits spent per day, last 8 days"),
            desc=_("Bars: the costCredit of the tasks that finished each day."),
        ),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "topview_callbacks/dashboard.html", context)


def _daily(hours: list[datetime], series: dict[str, list[int]]) -> list[tuple[str, list[int]]]:
    """The hourly series summed per day: the chart's text alternative."""
    days: dict[str, list[int]] = {}
    for i, hour in enumerate(hours):
        row = days.setdefault(hour.strftime("%Y-%m-%d"), [0] * len(series))
        for j, values in enumerate(series.values()):
            row[j] += values[i]
    return list(days.items())
