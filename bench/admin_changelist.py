"""Time the admin's notice and task changelists on PostgreSQL with 1,000,000 notices.

Usage: .venv/bin/python bench/admin_changelist.py [--rows 1000000] [--repeat 15] [--reload]

Uses its own database (``topview_admin_bench`` on 127.0.0.1:5432, or $BENCH_DB), never the
test database. The rows are made by SQL ``generate_series`` in a few seconds, then ANALYZEd.
Each page is fetched through Django's test client (the whole admin view and template,
no network), once to warm up and then ``--repeat`` times; prints median and max time and
the number of SQL queries per page. Stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_DB", "topview_admin_bench")
os.environ["DATABASE_URL_POSTGRES"] = DB_NAME
os.environ["DJANGO_DEBUG"] = "0"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

BIZ_TYPES = [
    "SCRAPER",
    "ZERO_SHOT_AVATAR",
    "M2V_PREVIEW",
    "M2V_EXPORT",
    "M2V_SCRIPT",
    "PRODUCT_AVATAR_IMAGE2VIDEO",
    "COMMON_TASK_IMAGE2VIDEO",
    "COMMON_TASK_TEXT2VIDEO",
    "COMMON_TASK_TEXT2IMAGE",
    "VOICE_CLONE",
    "FUTURE_PRODUCT",  # a bizType Topview added after this release
]


def create_database() -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres") as conn:
        conn.autocommit = True
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def load(rows: int) -> None:
    """Fill the tables with ``rows`` notices (and one task per two notices) in plain SQL."""
    from django.db import connection

    tasks = rows // 2
    types = "ARRAY[" + ",".join(f"'{t}'" for t in BIZ_TYPES) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask "
            "RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            f"""
            INSERT INTO topview_callbacks_submittedtask
              (account, biz_type, task_id, notice_uuid, status, previous_status,
               request_payload, result, error_message, submitted_at, completed_at,
               next_poll_at, poll_count, updated_at)
            SELECT CASE WHEN i % 10 = 0 THEN 'brand-b' ELSE 'default' END,
                   ({types})[1 + i % {len(BIZ_TYPES)}], 'task-' || i, 'uuid-' || i,
                   CASE WHEN i % 50 = 0 THEN 'running' WHEN i % 20 = 0 THEN 'fail'
                        ELSE 'success' END, '',
                   '{{}}'::jsonb, '{{"status": "success"}}'::jsonb, '',
                   now() - (i || ' seconds')::interval * 30,
                   now() - (i || ' seconds')::interval * 30 + interval '3 minutes',
                   NULL, 0, now()
            FROM generate_series(1, {tasks}) AS i
            """
        )
        cursor.execute(
            f"""
            INSERT INTO topview_callbacks_notice
              (uuid, account, biz_type, task_id, status, error_message, result, raw_body,
               headers, remote_addr, source, received_at, state, attempts, last_error,
               claim, processed_at, submitted_task_id)
            SELECT 'uuid-' || i,
                   CASE WHEN i % 10 = 0 THEN 'brand-b' ELSE 'default' END,
                   ({types})[1 + (i % {tasks}) % {len(BIZ_TYPES)}], 'task-' || (i % {tasks}),
                   CASE WHEN i % 20 = 0 THEN 'fail' ELSE 'success' END, '',
                   jsonb_build_object('previewVideos', jsonb_build_array(jsonb_build_object(
                       'videoUrl', 'https://cdn.example.com/v/' || i || '.mp4',
                       'coverUrl', 'https://cdn.example.com/c/' || i || '.jpg'))),
                   '{{"uuid":"uuid-' || i || '","taskId":"task-' || i || '","status":"success"}}',
                   '{{"Content-Type": "application/json"}}'::jsonb, '127.0.0.1',
                   CASE WHEN i % 7 = 0 THEN 'poll' ELSE 'callback' END,
                   now() - (i || ' seconds')::interval * 30,
                   CASE WHEN i % 97 = 0 THEN 'failed' WHEN i % 389 = 0 THEN 'pending'
                        WHEN i % 3 = 0 AND i % 2 = 0 THEN 'duplicate' ELSE 'processed' END,
                   1, CASE WHEN i % 97 = 0 THEN 'Traceback ... ValueError: boom' ELSE '' END,
                   '', now(), NULLIF(i % {tasks}, 0)
            FROM generate_series(1, {rows}) AS i
            """
        )
        cursor.execute("ANALYZE topview_callbacks_notice")
        cursor.execute("ANALYZE topview_callbacks_submittedtask")


def timed(client: object, url: str, repeat: int) -> tuple[float, float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)  # type: ignore[attr-defined]
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)  # type: ignore[attr-defined]
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), max(times), len(queries), len(response.content)


def prepared_admin(description: str) -> tuple[argparse.Namespace, object]:
    """Parse the shared options, set Django up on the bench database with its rows loaded,
    and return the options and a logged-in test client of a superuser."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--reload", action="store_true", help="reload the rows even if present")
    args = parser.parse_args()

    create_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from topview_callbacks.models import Notice

    call_command("migrate", verbosity=0)
    have = Notice.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if args.reload or have != args.rows:
        start = time.perf_counter()
        load(args.rows)
        print(f"loaded {args.rows:,} notices in {time.perf_counter() - start:.1f} s")
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return args, client


def main() -> None:
    args, client = prepared_admin(__doc__.splitlines()[0])
    from topview_callbacks.models import Notice

    notice = Notice.objects.filter(state="failed").order_by("-received_at").first()
    assert notice is not None
    base = "/admin/topview_callbacks/notice/"
    tasks = "/admin/topview_callbacks/submittedtask/"
    year = notice.received_at.year
    pages = [
        ("notices, unfiltered", base),
        ("notices, page 50", base + "?p=50"),
        ("notices, state=failed", base + "?state__exact=failed"),
        ("notices, bizType=M2V_EXPORT", base + "?biz_type=M2V_EXPORT"),
        ("notices, unknown bizType", base + "?biz_type=FUTURE_PRODUCT"),
        ("notices, status=fail + source=poll", base + "?status=fail&source__exact=poll"),
        ("notices, account=brand-b", base + "?account=brand-b"),
        ("notices, year", base + f"?received_at__year={year}"),
        ("notices, search task id", base + f"?q={notice.task_id}"),
        ("notices, search uuid", base + f"?q={notice.uuid}"),
        ("notice detail", base + f"{notice.pk}/change/"),
        ("tasks, unfiltered", tasks),
        ("tasks, status=fail", tasks + "?status__exact=fail"),
        (
            "task detail",
            f"/admin/topview_callbacks/submittedtask/{notice.submitted_task_id}/change/",
        ),
    ]
    print(f"{'page':40} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for name, url in pages:
        median, worst, queries, _size = timed(client, url, args.repeat)
        print(f"{name:40} {median:10.1f} {worst:8.1f} {queries:8d}")


if __name__ == "__main__":
    main()
