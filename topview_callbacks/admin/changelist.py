"""Changelists that stay fast on tables with millions of rows.

The notice and task tables grow without bound, and Django's defaults read all of them:
``COUNT(*)`` for the paginator and the result count, ``SELECT DISTINCT`` for the date
hierarchy and for list filters, one ``COUNT`` per filter choice for facets. The pieces
here replace each with a query that uses an index or the planner's statistics;
``FastListMixin`` puts them together for a ``ModelAdmin``.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import Max, Min, Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.conf import topview_settings
from topview_callbacks.estimates import planner_rows as _planner_rows
from topview_callbacks.models import TaskStatus

if TYPE_CHECKING:
    from django.template.response import _TemplateForResponseT

_T = TypeVar("_T")

#: Above this many rows a changelist shows PostgreSQL's estimate instead of counting.
EXACT_COUNT_LIMIT = 10_000
#: How long an exact count of a small filtered result may take before it is estimated.
COUNT_TIMEOUT_MS = 150
#: The most distinct bizType/account values a filter lists.
MAX_FILTER_VALUES = 100


class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Counts exactly up to ``EXACT_COUNT_LIMIT`` rows; above that on PostgreSQL, estimates.

    ``COUNT(*)`` reads every matching row: seconds on a table of millions. PostgreSQL's
    planner already knows roughly how many rows a query matches (from ``pg_class.reltuples``
    and the column statistics), so ``EXPLAIN`` gives a count for the price of planning.
    A cheap ``OFFSET`` probe confirms there really are more rows than the limit first, so
    a bad estimate on a small result still gets an exact count. A small result on a filter
    without an index still reads the whole table to count it, so that count gets
    ``COUNT_TIMEOUT_MS``; past it, the estimate is shown. ``estimated`` says which.
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and connections[queryset.db].vendor == "postgresql":
            estimate = _planner_rows(queryset)
            if estimate > EXACT_COUNT_LIMIT:
                # A rare value of an unindexed column reads far to find 10,001 rows: a probe
                # out of time says the result is big too.
                more = _within(
                    queryset, COUNT_TIMEOUT_MS, lambda: _has_more_than(queryset, EXACT_COUNT_LIMIT)
                )
                if more is not False:
                    self.estimated = True
                    return max(estimate, EXACT_COUNT_LIMIT + 1)
            exact = _within(queryset, COUNT_TIMEOUT_MS, queryset.count)
            if exact is None:
                self.estimated = True
                return estimate
            return exact
        return super().count


def planner_estimate(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's estimate of how many rows ``queryset`` matches (None on other databases)."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    return _planner_rows(queryset)


def _within(queryset: QuerySet[Any], timeout_ms: int, run: Callable[[], _T]) -> _T | None:
    """``run()`` (a query on ``queryset``'s database), or None when PostgreSQL gives up
    after ``timeout_ms``."""
    connection = connections[queryset.db]
    try:
        with transaction.atomic(using=queryset.db), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('statement_timeout'), "
                "set_config('statement_timeout', %s, true)",
                [str(timeout_ms)],
            )
            previous = cursor.fetchone()[0]
            result = run()
            # SET LOCAL outlives a savepoint that is released: put the old value back.
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
            return result
    except OperationalError:  # QueryCanceled: the rollback restored the old timeout
        return None


def _has_more_than(queryset: QuerySet[Any], limit: int) -> bool:
    return queryset.order_by().values("pk")[limit : limit + 1].exists()


def distinct_values(model: type[Model], column: str, limit: int = MAX_FILTER_VALUES) -> list[str]:
    """The distinct values of an indexed column, by a skip scan instead of ``DISTINCT``.

    Each step asks the index for the next value greater than the last one, so the cost
    grows with the number of distinct values (a dozen bizTypes), not with the table.
    """
    connection = connections[topview_settings.read_database or model._default_manager.db]
    table = connection.ops.quote_name(model._meta.db_table)
    col = connection.ops.quote_name(column)
    sql = (
        f"WITH RECURSIVE vals(v) AS ("
        f" SELECT MIN({col}) FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > vals.v) FROM vals"
        f" WHERE vals.v IS NOT NULL"
        f") SELECT v FROM vals WHERE v IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class ColumnFilter(admin.SimpleListFilter):
    """Rows whose column ``parameter_name`` equals the chosen value (all rows without one)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class BizTypeFilter(ColumnFilter):
    """The known bizTypes by label, plus any unknown one found in the data (cheaply)."""

    title = _("bizType")
    parameter_name = "biz_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        known = {value: str(label) for value, label in biz_types.BizType.choices}
        # Through the (biz_type) index both tables have.
        found = distinct_values(model_admin.model, "biz_type")
        unknown = sorted(set(found) - set(known))
        return [
            *((value, f"{value} ({label})") for value, label in known.items()),
            *((value, _("%s (unknown)") % value) for value in unknown),
        ]


class AccountFilter(ColumnFilter):
    """The accounts configured in settings; there is no index to find others cheaply."""

    title = _("account")
    parameter_name = "account"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(topview_settings.accounts) | {"default"}
        if self.value():
            names.add(str(self.value()))
        return [(name, name) for name in sorted(names)]


class NoticeStatusFilter(ColumnFilter):
    """The outcome Topview reported (``status`` has no choices: it stores what was sent)."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (TaskStatus.SUCCESS.value, str(_("Success"))),
            (TaskStatus.FAIL.value, str(_("Fail"))),
        ]


class FastChangeList(ChangeList):
    """A changelist whose date hierarchy costs one MIN/MAX, not a DISTINCT over the table,
    and whose rows and counts come from ``READ_DATABASE`` when one is set.

    Django lists the years (or months, days) that hold rows with ``SELECT DISTINCT
    date_trunc(...)``, which reads every row. Here the choices are every period between
    the first and the last row (found through the date index); a period may be empty.
    """

    def get_results(self, request: HttpRequest) -> None:
        # Only what is shown is read from READ_DATABASE: the admin's actions act on
        # ``get_queryset()``, which Django builds again for them, on the primary.
        alias = topview_settings.read_database
        if alias is None:
            return super().get_results(request)
        primary = self.queryset, self.root_queryset
        self.queryset, self.root_queryset = (qs.using(alias) for qs in primary)
        try:
            return super().get_results(request)
        finally:
            self.queryset, self.root_queryset = primary

    def date_hierarchy_links(self) -> dict[str, Any]:
        field = self.date_hierarchy
        params = self.get_filters_params()
        # Django 5 keeps every query parameter as a list, 4.2 as a string.
        year, month, day = (
            _last(params.get(f"{field}__{part}")) for part in ("year", "month", "day")
        )

        def link(**parts: Any) -> str:
            keep = {f"{field}__{key}": value for key, value in parts.items()}
            drop = [f"{field}__{key}" for key in ("year", "month", "day") if key not in parts]
            return self.get_query_string(keep, drop)

        if day and month and year:
            return {
                "show": True,
                "back": {"link": link(year=year, month=month), "title": f"{year}-{month:02}"},
                "choices": [{"title": f"{year}-{month:02}-{day:02}"}],
            }
        if month and year:
            y, m = year, month
            days = calendar.monthrange(y, m)[1] if 1 <= m <= 12 else 0
            return {
                "show": True,
                "back": {"link": link(year=y), "title": str(y)},
                "choices": [
                    {"link": link(year=y, month=m, day=d), "title": f"{y}-{m:02}-{d:02}"}
                    for d in range(1, days + 1)
                ],
            }
        if year:
            y = year
            return {
                "show": True,
                "back": {"link": link(), "title": _("All dates")},
                "choices": [
                    {"link": link(year=y, month=m), "title": f"{y}-{m:02}"} for m in range(1, 13)
                ],
            }
        shown = self.queryset.using(topview_settings.read_database or self.queryset.db)
        span = shown.order_by().aggregate(first=Min(field), last=Max(field))
        if span["first"] is None:
            return {"show": False}
        first, last = timezone.localtime(span["first"]), timezone.localtime(span["last"])
        return {
            "show": True,
            "back": None,
            "choices": [
                {"link": link(year=y), "title": str(y)} for y in range(first.year, last.year + 1)
            ],
        }


def _last(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class FastListMixin:
    """Changelist settings for the two big tables: no full count, no facets, no DISTINCT."""

    paginator: ClassVar[type] = EstimatedCountPaginator
    show_full_result_count = False  # that would be a COUNT(*) of the whole table
    if hasattr(admin, "ShowFacets"):  # Django 5.0+; 4.2 has no facets
        show_facets = admin.ShowFacets.NEVER  # facet counts are one COUNT per filter choice
    list_per_page = 50
    # FastChangeList's date hierarchy, and a note when the count is an estimate.
    change_list_template: ClassVar[_TemplateForResponseT | None] = (
        "topview_callbacks/change_list.html"
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return FastChangeList
