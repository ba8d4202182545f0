"""Time the admin's "Topview pipeline" dashboard on PostgreSQL with 1,000,000 notices.

Usage: .venv/bin/python bench/dashboard.py [--rows 1000000] [--repeat 15] [--reload]

The same database and rows as bench/admin_changelist.py (``topview_admin_bench``, made by
``generate_series``; both scripts share it), plus rejected deliveries over the last day.
Topview's credit API is answered by the fake (``mock_topview``); the first, untimed
request fills the credit cache as the first visit of a day would. Prints the median and
worst time of the whole admin view and template, and its SQL query count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.admin_changelist import create_database, load

URL = "/admin/topview_callbacks/notice/dashboard/"


def add_rejections() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE topview_callbacks_rejecteddelivery")
        cursor.execute(
            """
            INSERT INTO topview_callbacks_rejecteddelivery
              (minute, reason, remote_addr, status, count, account, last_uuid, last_seen_at)
            SELECT date_trunc('minute', now()) - (i || ' minutes')::interval,
                   (ARRAY['wrong_uid','invalid','too_large'])[1 + i % 3],
                   '203.0.113.' || (i % 50), CASE WHEN i % 3 = 0 THEN 403 ELSE 400 END,
                   1 + i % 7, '', '', now()
            FROM generate_series(0, 60 * 24 * 30) AS i
            """
        )
        cursor.execute("ANALYZE topview_callbacks_rejecteddelivery")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--reload", action="store_true", help="reload the rows even if present")
    args = parser.parse_args()

    create_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from topview_callbacks.models import Notice
    from topview_callbacks.testing import mock_topview

    call_command("migrate", verbosity=0)
    have = Notice.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if args.reload or have != args.rows:
        start = time.perf_counter()
        load(args.rows)
        print(f"loaded {args.rows:,} notices in {time.perf_counter() - start:.1f} s")
    add_rejections()
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    times = []
    with mock_topview():
        assert client.get(URL).status_code == 200  # warms the credit cache
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(URL)
                times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print(
        f"dashboard: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms, "
        f"{len(queries)} queries, {len(response.content):,} bytes"
    )


if __name__ == "__main__":
    main()
