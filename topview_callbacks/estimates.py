"""Counts that stay cheap on tables of millions of rows: exact while small, PostgreSQL's
planner estimate (``EXPLAIN``, no row read) once they pass a limit."""

from __future__ import annotations

import json
from typing import Any

from django.db import connections
from django.db.models import QuerySet


def planner_rows(queryset: QuerySet[Any]) -> int:
    """How many rows PostgreSQL's planner expects ``queryset`` to return."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # psycopg2, or psycopg without the json loader
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def bounded_count(queryset: QuerySet[Any], limit: int) -> tuple[int, bool]:
    """``(count, estimated)``: exact up to ``limit`` rows (reading at most ``limit + 1``);
    above it, PostgreSQL's estimate (at least ``limit + 1``), or the exact count elsewhere."""
    queryset = queryset.order_by()
    within = queryset.values("pk")[: limit + 1].count()
    if within <= limit:
        return within, False
    if connections[queryset.db].vendor != "postgresql":
        return queryset.count(), False
    return max(planner_rows(queryset), limit + 1), True
