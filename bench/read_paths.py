"""The admin changelists, the dashboard and ``topview_health`` on big tables: every query
they run, with PostgreSQL's own timing (``EXPLAIN ANALYZE``).

Usage: nice -n 10 .venv/bin/python bench/read_paths.py [--database topview_wal_bench]
           [--repeat 5] [--slower-than 50]

Runs on a database ``bench/wal.py`` or ``bench/big_tables.py`` filled (it never fills one
itself), migrated to the current schema first. Each page is fetched through Django's test
client (the whole admin view and template, no network) once to warm up, then
``--repeat`` times (median and max printed); ``topview_health``'s measurements are timed
the same way. Before that, the dashboard's counts kept per hour (``rollups``) are
dropped, and the first fetch of the dashboard, which counts every settled hour of its
window, is timed on its own ("cold"), as is counting one hour again (what the sweep does
for each hour that closes). The baseline: the raw grouped reads the dashboard ran before
(``BASELINE``), once, in the same run, and the ratio of the dashboard's median to it.
Every query of one fetch is then run again under
``EXPLAIN (ANALYZE, BUFFERS)``; the ones slower than ``--slower-than`` ms are printed with
their plan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fetch: Callable[[], Any], repeat: int) -> tuple[float, float, list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fetch()
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            fetch()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), [q["sql"] for q in captured.captured_queries]


def explained(queries: list[str], slower_than: float) -> None:
    from django.db import connection

    for query in queries:
        if not query.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}")
            lines = [row[0] for row in cursor.fetchall()]
        total = sum(
            float(line.split(":")[1].split()[0])
            for line in lines
            if line.startswith(("Planning Time", "Execution Time"))
        )
        if total >= slower_than:
            print(f"  {total:8.1f} ms  {query[:160]}")
            for line in lines:
                print(f"            {line}")


#: What the dashboard read before its counts were kept per hour (the SQL of its three
#: grouped reads, as it ran them; the durations were then loaded into Python).
BASELINE = (
    "SELECT date_trunc('hour', received_at), state, count(*) FROM topview_callbacks_notice "
    "WHERE received_at >= now() - interval '7 days' GROUP BY 1, 2",
    "SELECT biz_type, status, count(*) FROM topview_callbacks_submittedtask "
    "WHERE submitted_at >= now() - interval '7 days' GROUP BY 1, 2",
    "SELECT biz_type, completed_at - submitted_at FROM topview_callbacks_submittedtask "
    "WHERE submitted_at >= now() - interval '7 days' AND status IN ('success', 'fail') "
    "AND completed_at IS NOT NULL",
    "SELECT date(submitted_at), account, sum(cost_credit) FROM topview_callbacks_submittedtask "
    "WHERE submitted_at >= now() - interval '8 days' AND cost_credit IS NOT NULL GROUP BY 1, 2",
)


def baseline() -> float:
    """Milliseconds to run ``BASELINE`` once, every row fetched."""
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        for query in BASELINE:
            cursor.execute(query)
            cursor.fetchall()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="topview_wal_bench")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slower-than", type=float, default=50.0)
    parser.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip timing the old dashboard's raw reads (the baseline)",
    )
    args = parser.parse_args()
    # The example project (it has the admin) on that database, DEBUG off.
    os.environ["DATABASE_URL_POSTGRES"] = args.database
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from topview_callbacks import health, rollups
    from topview_callbacks.models import Notice, RollupHour
    from topview_callbacks.testing import mock_topview

    call_command("migrate", verbosity=0)

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    notice = Notice.objects.filter(state="failed").order_by("-received_at").first()
    assert notice is not None, "fill the database with bench/wal.py first"
    rows = Notice.objects.order_by("-id").values_list("id", flat=True).first()
    base = "/admin/topview_callbacks/notice/"
    tasks = "/admin/topview_callbacks/submittedtask/"
    pages = [
        ("notices, unfiltered", base),
        ("notices, page 50", base + "?p=50"),
        ("notices, state=failed", base + "?state__exact=failed"),
        ("notices, state=processed", base + "?state__exact=processed"),
        ("notices, bizType=M2V_PREVIEW", base + "?biz_type=M2V_PREVIEW"),
        ("notices, search task id", base + f"?q={notice.task_id}"),
        ("notices, search uuid", base + f"?q={notice.uuid}"),
        ("notice detail", base + f"{notice.pk}/change/"),
        ("tasks, unfiltered", tasks),
        ("tasks, status=fail", tasks + "?status__exact=fail"),
        ("tasks, search task id", tasks + f"?q={notice.task_id}"),
        ("dashboard", base + "dashboard/"),
    ]
    print(f"~{rows:,} notices; load average {os.getloadavg()}")
    print(f"{'page':36} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    with mock_topview():  # the dashboard asks Topview's credit API
        results = []
        for model in rollups.KEPT:
            model.objects.all().delete()
        start = time.perf_counter()
        response = client.get(base + "dashboard/")
        assert response.status_code == 200
        cold = (time.perf_counter() - start) * 1000
        hours = RollupHour.objects.count()
        print(f"{'dashboard, cold (counts ' + str(hours) + ' hours)':36} {cold:10.1f}")
        an_hour = rollups.settled_until(timezone.now()) - 24 * rollups.HOUR
        rollups.forget([an_hour])
        median, worst, _ = timed(
            lambda: (rollups.forget([an_hour]), rollups.fill(an_hour, timezone.now())),
            args.repeat,
        )
        print(f"{'counting one hour again (the sweep)':36} {median:10.1f} {worst:8.1f}")
        dashboard = 0.0
        for name, url in pages:

            def fetch(url: str = url) -> Any:
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)

            median, worst, queries = timed(fetch, args.repeat)
            print(f"{name:36} {median:10.1f} {worst:8.1f} {len(queries):8d}")
            results.append((name, queries))
            if name == "dashboard":
                dashboard = median
        median, worst, queries = timed(health.measure, args.repeat)
        print(f"{'topview_health (measure)':36} {median:10.1f} {worst:8.1f} {len(queries):8d}")
        results.append(("topview_health", queries))
    if args.baseline:
        before = baseline()
        print(f"{'baseline: the raw reads of the old dashboard':36} {before:10.1f}")
        print(f"dashboard / baseline: {dashboard / before:.4f}")
    print(f"load average at the end {os.getloadavg()}")
    for name, queries in results:
        print(f"{name}: queries over {args.slower_than} ms")
        explained(queries, args.slower_than)


if __name__ == "__main__":
    main()
