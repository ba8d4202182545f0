"""Time the admin's "Topview pipeline" dashboard on PostgreSQL with 1,000,000 notices.

Usage: .venv/bin/python bench/dashboard.py [--rows 1000000] [--repeat 15] [--reload]

The same database and rows as bench/admin_changelist.py (``topview_admin_bench``, made by
``generate_series``; both scripts share it), plus rejected deliveries over the last day.
Topview's credit API is answered by the fake (``mock_topview``); the first, untimed
request fills the credit cache as the first visit of a day would. Prints the median and
worst time of the whole admin view and template, and its SQL query count.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.admin_changelist import prepared_admin, timed

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
    args, client = prepared_admin(__doc__.splitlines()[0])
    add_rejections()
    from topview_callbacks.testing import mock_topview

    with mock_topview():  # the credit API; the untimed first request fills its cache
        median, worst, queries, size = timed(client, URL, args.repeat)
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print(
        f"dashboard: median {median:.1f} ms, max {worst:.1f} ms, {queries} queries, {size:,} bytes"
    )


if __name__ == "__main__":
    main()
