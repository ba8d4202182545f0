"""Fill a database of its own with millions of notices and tasks for ``bench/read_paths.py``.

Usage: nice -n 10 .venv/bin/python bench/big_tables.py --database topview_bench_rollups
           [--rows 10000000] [--days 10] [--chunk 1000000] [--drop]

Creates the database afresh (``--drop`` only drops it), migrates it and generates
``--rows`` notices with ``generate_series``, ``--chunk`` rows per transaction, received
evenly over the last ``--days`` days, each with its own task (its completion time is the
notice's arrival). The mix, by row number ``i``: every 100th failed (its task failed),
every 100th + 50 a duplicate, every 1,000th + 7 ignored, the newest 200 pending, the rest
processed; tasks: the newest 300 running, every 1,000th + 3 expired, turnaround spread
log-uniformly from 5 s to a day, five bizTypes, two accounts, ``costCredit`` 0.5 to 6.5.
Bodies and results are the benchmark's M2V_PREVIEW ones (``bench/wal.py``).
Then ``VACUUM ANALYZE`` both tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.wal import HEADERS, RESULT, server

BIZ_TYPES = "ARRAY['M2V_PREVIEW','SCRAPER','M2V_EXPORT','COMMON_TASK_TEXT2IMAGE','NEW_TYPE']"


def fill(rows: int, days: int, first: int, last: int) -> None:
    """Notices and tasks ``first`` to ``last`` (1-based) of ``rows``."""
    from django.db import connection

    when = "now() - interval '1 day' * %(days)s * (%(rows)s - i) / %(rows)s"
    took = "interval '1 second' * round(5 * exp(((i::bigint * 7919) %% 1000) / 1000.0 * ln(17280)))"
    biz_type = f"({BIZ_TYPES})[1 + i %% 5]"
    account = "CASE WHEN i %% 3 = 0 THEN 'second' ELSE 'default' END"
    task_status = (
        "CASE WHEN i > %(rows)s - 300 THEN 'running' WHEN i %% 100 = 0 THEN 'fail' "
        "WHEN i %% 1000 = 3 THEN 'expired' ELSE 'success' END"
    )
    completed = f"CASE WHEN i > %(rows)s - 300 OR i %% 1000 = 3 THEN NULL ELSE {when} END"
    state = (
        "CASE WHEN i > %(rows)s - 200 THEN 'pending' WHEN i %% 100 = 0 THEN 'failed' "
        "WHEN i %% 100 = 50 THEN 'duplicate' WHEN i %% 1000 = 7 THEN 'ignored' "
        "ELSE 'processed' END"
    )
    result = "replace(%(result)s, 'TASK', md5('t' || i))::jsonb"
    body = (
        '\'{"uuid":"\' || md5(\'u\' || i) || \'","bizType":"M2V_PREVIEW","taskId":"\' '
        '|| md5(\'t\' || i) || \'","status":"success","errorMsg":"","result":"\' '
        "|| replace(replace(%(result)s, 'TASK', md5('t' || i)), '\"', '\\\"') || '\"}'"
    )
    params = {
        "rows": rows,
        "days": days,
        "first": first,
        "last": last,
        "result": RESULT,
        "headers": HEADERS,
    }
    series = "generate_series(%(first)s, %(last)s) AS i ORDER BY i"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO topview_callbacks_submittedtask
              (id, account, biz_type, task_id, notice_uuid, status, previous_status,
               request_payload, result, error_message, submitted_at, completed_at,
               next_poll_at, poll_count, updated_at, cost_credit)
            SELECT i, {account}, {biz_type}, md5('t' || i), md5('u' || i), {task_status},
                   'running', '{{}}', {result}, '', {when} - {took}, {completed},
                   CASE WHEN i > %(rows)s - 300 THEN {when} + interval '1 minute' END,
                   0, {when}, 0.5 + i %% 7
            FROM {series}
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO topview_callbacks_notice
              (id, uuid, account, biz_type, task_id, status, error_message, result, raw_body,
               headers, remote_addr, source, received_at, state, attempts, last_error,
               next_attempt_at, claimed_at, claim, processed_at, submitted_task_id)
            SELECT i, md5('u' || i), {account}, {biz_type}, md5('t' || i),
                   CASE WHEN i %% 100 = 0 THEN 'fail' ELSE 'success' END, '',
                   {result}, {body}, %(headers)s::jsonb, '203.0.113.7', 'callback',
                   {when}, {state}, 1,
                   CASE WHEN i %% 100 = 0 THEN 'Traceback ... ValueError: boom' ELSE '' END,
                   NULL, {when}, '', {when}, i
            FROM {series}
            """,
            params,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--drop", action="store_true")
    args = parser.parse_args()
    server(f'DROP DATABASE IF EXISTS "{args.database}"')
    if args.drop:
        return
    server(f'CREATE DATABASE "{args.database}"')
    os.environ["BENCH_DATABASE"] = args.database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    for first in range(1, args.rows + 1, args.chunk):
        last = min(args.rows, first + args.chunk - 1)
        fill(args.rows, args.days, first, last)
        print(f"{last:,} rows after {time.perf_counter() - start:.0f} s; load {os.getloadavg()}")
    with connection.cursor() as cursor:
        for table in ("topview_callbacks_notice", "topview_callbacks_submittedtask"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [args.rows]
            )
    connection.close()
    for table in ("topview_callbacks_notice", "topview_callbacks_submittedtask"):
        server(f"VACUUM ANALYZE {table}", args.database)
    print(f"filled and vacuumed in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
