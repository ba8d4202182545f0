"""Partitioned notices (PARTITION_NOTICES) against one plain table, on PostgreSQL here.

    .venv/bin/python bench/partitions.py receive [--rounds 3] [--requests 2000]
        [--processing manual,inline]
    .venv/bin/python bench/partitions.py prune [--notices 5000000] [--layouts plain,partitioned]
    .venv/bin/python bench/partitions.py convert [--notices 1000000]
    .venv/bin/python bench/partitions.py drop

``receive``: CPU per request of the endpoint (bench/cpu.py, in-process: Python and the
PostgreSQL backend), inline and manual, alternating runs on a plain database and a
partitioned one; prints plain/partitioned (1.00: as fast; the goal is at least 0.95).

``prune``: one month of ``--notices`` notices (1% failed, the rest processed, the
benchmark's M2V_PREVIEW body), past retention, in a plain database and in a partitioned
one; then ``pruning.prune()`` as ``topview_prune`` runs it: batched DELETEs and a VACUUM
on the plain table, the month dropped on the partitioned one (its failed notices kept).
Seconds, and WAL bytes as the LSN moved (the server is shared: the WAL the other
databases wrote meanwhile is measured over 10 s before each step and printed beside).

``convert``: ``manage.py topview_partition_notices`` on a plain table of ``--notices``
rows: seconds per million. ``drop``: drop the databases these make
(``topview_bench_part*``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PLAIN, KEYED = "topview_bench_part_plain", "topview_bench_part_keyed"
PRUNE_PLAIN, PRUNE_KEYED = "topview_bench_part_prune_plain", "topview_bench_part_prune_keyed"
CONVERT = "topview_bench_part_convert"
MONTH = "2026-07-01"  # past any retention of 90 days


def admin(query: str, database: str = "postgres") -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True
    ) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def env(database: str, partitioned: bool, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_DATABASE": database,
        "BENCH_PARTITION_NOTICES": "1" if partitioned else "0",
        **more,
    }


def fresh(database: str, partitioned: bool) -> None:
    admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{database}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=env(database, partitioned),
        check=True,
    )


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# --- receive -------------------------------------------------------------------------


def cpu_run(database: str, partitioned: bool, processing: str, requests: int) -> float:
    """Median CPU µs per request (Python + PostgreSQL) of the endpoint, one cpu.py run."""
    done = subprocess.run(
        [
            PYTHON,
            "bench/cpu.py",
            "--processing",
            processing,
            "--requests",
            str(requests),
            "--rounds",
            "2",
        ],
        cwd=ROOT,
        env=env(database, partitioned),
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"both: ours +(\d+) µs", done.stdout)
    if found is None:
        raise SystemExit(done.stdout + done.stderr)
    return float(found[1])


def receive(rounds: int, requests: int, modes: list[str]) -> None:
    fresh(PLAIN, False)
    fresh(KEYED, True)
    print(f"load before: {load()}")
    for processing in modes:
        runs: dict[bool, list[float]] = {False: [], True: []}
        for number in range(rounds):
            order = (False, True) if number % 2 == 0 else (True, False)
            for partitioned in order:
                database = KEYED if partitioned else PLAIN
                runs[partitioned].append(cpu_run(database, partitioned, processing, requests))
        plain, keyed = statistics.median(runs[False]), statistics.median(runs[True])
        print(
            f"{processing}: plain {plain:.0f} µs, partitioned {keyed:.0f} µs per request "
            f"(runs {runs[False]} / {runs[True]}); plain/partitioned {plain / keyed:.2f}"
        )
    print(f"load after: {load()}")


# --- prune ---------------------------------------------------------------------------


def body() -> tuple[str, str]:
    """The benchmark's notice: its raw body and its result, uuid and task id as markers."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from topview_callbacks.testing import notice_payload

    payload = notice_payload("M2V_PREVIEW", uuid="UUIDMARK", task_id="TASKMARK")
    return json.dumps(payload), str(payload["result"])


def generate(database: str, count: int, month: str = MONTH) -> None:
    """``count`` notices spread over ``month``, 1% failed, with their keys when
    partitioned (written apart: triggers off while generating)."""
    raw, result = body()
    start = time.monotonic()
    partitioned = admin(
        "SELECT relkind FROM pg_class WHERE relname = 'topview_callbacks_notice'", database
    ) == [("p",)]
    if partitioned:
        name = f"topview_callbacks_notice_p{month[:4]}_{month[5:7]}"
        admin(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF topview_callbacks_notice FOR VALUES "
            f"FROM ('{month} 00:00+00') TO (('{month}'::date + interval '1 month')::date)",
            database,
        )
    admin(
        "SET session_replication_role = replica; "
        "INSERT INTO topview_callbacks_notice (uuid, account, biz_type, task_id, status, "
        "error_message, result, raw_body, headers, remote_addr, source, received_at, state, "
        "attempts, last_error, claim, processed_at) "
        "SELECT md5(n::text || 'u'), 'default', 'M2V_PREVIEW', md5(n::text || 't'), 'success', "
        f"'', replace('{result}', 'TASKMARK', md5(n::text || 't'))::jsonb, "
        f"replace(replace('{raw}', 'UUIDMARK', md5(n::text || 'u')), 'TASKMARK', "
        "md5(n::text || 't')), '{\"user-agent\": \"Topview\"}', '127.0.0.1', 'callback', "
        f"'{month}'::timestamptz + (n::float / {count}) * interval '30 days', "
        "CASE WHEN n % 100 = 0 THEN 'failed' ELSE 'processed' END, 1, '', '', "
        f"'{month}'::timestamptz FROM generate_series(1, {count}) n",
        database,
    )
    if partitioned:
        admin(
            "INSERT INTO topview_callbacks_noticekey SELECT uuid, received_at "
            "FROM topview_callbacks_notice",
            database,
        )
    admin("VACUUM ANALYZE", database)
    heap = f"topview_callbacks_notice_p{month[:4]}_{month[5:7]}" if partitioned else ""
    for table in (heap or "topview_callbacks_notice", "topview_callbacks_noticekey"):
        admin(f"ALTER TABLE {table} SET (autovacuum_enabled = off)", database)
    print(f"  {database}: {count} notices generated in {time.monotonic() - start:.0f} s")


def lsn() -> str:
    return str(admin("SELECT pg_current_wal_lsn()")[0][0])


def wal_since(start: str) -> int:
    return int(admin(f"SELECT pg_current_wal_lsn() - '{start}'::pg_lsn")[0][0])


def background_wal(seconds: float = 10) -> float:
    """Bytes of WAL per second the server writes while this script does nothing."""
    start = lsn()
    time.sleep(seconds)
    return wal_since(start) / seconds


def step(label: str, action: list[str] | str, database: str, partitioned: bool) -> None:
    """Run a command (argv) or SQL, after a checkpoint; print its seconds and WAL."""
    admin("CHECKPOINT")
    background = background_wal()
    begin, started = lsn(), time.monotonic()
    if isinstance(action, str):
        admin(action, database)
    else:
        subprocess.run(action, cwd=ROOT, env=env(database, partitioned), check=True)
    seconds, wal = time.monotonic() - started, wal_since(begin)
    print(
        f"  {label}: {seconds:.1f} s, WAL {wal / 1e6:.0f} MB "
        f"(the server's background meanwhile, from the 10 s before: "
        f"~{background * seconds / 1e6:.0f} MB); load {load().split('load average: ')[1]}"
    )


PRUNE = [PYTHON, "bench/partitions.py", "measured-prune"]


def measured_prune() -> None:
    """``pruning.prune()`` as ``topview_prune`` runs it (90 days, failed 365), each data
    statement run under ``EXPLAIN (ANALYZE, WAL)`` to count the WAL this process wrote: the
    server is shared, so the LSN also moves with the other databases' writes. The DDL
    (detach, rename, drop: catalog rows) is not counted."""
    import django

    django.setup()
    from datetime import timedelta

    from django.db import connection

    from topview_callbacks.pruning import prune as run_prune

    wal = [0]

    def measure(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.split(None, 1)[0].upper() not in ("DELETE", "UPDATE", "INSERT") or many:
            return execute(sql, params, many, context)
        explained = f"EXPLAIN (ANALYZE, WAL, TIMING OFF, FORMAT JSON) {sql}"
        result = execute(explained, params, many, context)
        plan = context["cursor"].fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        wal[0] += int(plan[0]["Plan"].get("WAL Bytes", 0))
        return result

    started = time.monotonic()
    with connection.execute_wrapper(measure):
        run_prune(older_than=timedelta(days=90), failed_older_than=timedelta(days=365))
    print(f"prune: {time.monotonic() - started:.1f} s, data statements' WAL {wal[0]} bytes")


def vacuum(database: str, table: str) -> None:
    """VACUUM (VERBOSE) ``table``; its seconds and the WAL it reports."""
    import psycopg

    reported: list[str] = []
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={database}", autocommit=True) as c:
        c.add_notice_handler(lambda notice: reported.append(str(notice.message_primary)))
        started = time.monotonic()
        c.execute(f"VACUUM (VERBOSE) {table}")
        seconds = time.monotonic() - started
    wal = sum(int(n) for n in re.findall(r"WAL usage: .*?(\d+) bytes", "\n".join(reported)))
    print(f"  VACUUM {table}: {seconds:.1f} s, WAL {wal / 1e6:.0f} MB (VACUUM VERBOSE's count)")


def prune(count: int, layouts: list[str]) -> None:
    print(f"load before: {load()}")
    databases = []
    if "plain" in layouts:
        fresh(PRUNE_PLAIN, False)
        generate(PRUNE_PLAIN, count)
        databases.append(PRUNE_PLAIN)
    if "partitioned" in layouts:
        fresh(PRUNE_KEYED, True)
        generate(PRUNE_KEYED, count)
        databases.append(PRUNE_KEYED)
    for database in databases:
        size = admin(
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) "
            "FROM pg_partition_tree('topview_callbacks_notice') WHERE isleaf), "
            "pg_total_relation_size('topview_callbacks_notice')), "
            "pg_total_relation_size('topview_callbacks_noticekey')",
            database,
        )[0]
        print(
            f"  {database}: notices {float(size[0]) / 1e9:.2f} GB, "
            f"keys {float(size[1]) / 1e9:.2f} GB"
        )
    if "plain" in layouts:
        print(f"one plain table, {count} notices of {MONTH[:7]}, 1% failed:")
        step("topview_prune (batched DELETE)", PRUNE, PRUNE_PLAIN, False)
        vacuum(PRUNE_PLAIN, "topview_callbacks_notice")
    if "partitioned" in layouts:
        print("partitioned, the same notices in the month's partition:")
        step("topview_prune (month dropped)", PRUNE, PRUNE_KEYED, True)
        vacuum(PRUNE_KEYED, "topview_callbacks_noticekey")
    for database in databases:
        left = admin(
            "SELECT count(*), coalesce((SELECT sum(pg_total_relation_size(relid)) "
            "FROM pg_partition_tree('topview_callbacks_notice') WHERE isleaf), "
            "pg_total_relation_size('topview_callbacks_notice')) "
            "FROM topview_callbacks_notice",
            database,
        )[0]
        print(
            f"  {database} afterwards: {left[0]} notices kept, "
            f"{float(left[1]) / 1e9:.2f} GB on disk"
        )
    print(f"load after: {load()}")


def convert(count: int) -> None:
    print(f"load before: {load()}")
    fresh(CONVERT, False)
    generate(CONVERT, count)
    step(
        f"topview_partition_notices, {count} notices",
        [PYTHON, "manage.py", "topview_partition_notices"],
        CONVERT,
        True,
    )
    print(f"load after: {load()}")


def drop() -> None:
    for (name,) in admin(
        "SELECT datname FROM pg_database WHERE datname LIKE 'topview\\_bench\\_part%'"
    ):
        admin(f'DROP DATABASE "{name}" WITH (FORCE)')
        print(f"dropped {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("receive", "prune", "convert", "drop", "measured-prune"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--notices", type=int)
    parser.add_argument("--processing", default="manual,inline", help="receive: the modes")
    parser.add_argument(
        "--layouts", default="plain,partitioned", help="prune: plain, partitioned or both"
    )
    args = parser.parse_args()
    if args.what == "receive":
        receive(args.rounds, args.requests, args.processing.split(","))
    elif args.what == "prune":
        prune(args.notices or 5_000_000, args.layouts.split(","))
    elif args.what == "convert":
        convert(args.notices or 1_000_000)
    elif args.what == "measured-prune":
        measured_prune()
    else:
        drop()


if __name__ == "__main__":
    main()
