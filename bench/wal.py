"""WAL per stored and per processed notice on PostgreSQL once the tables are big.

Usage: nice -n 10 .venv/bin/python bench/wal.py [--rows 2000000] [--notices 1000]
           [--schema after|before] [--database NAME] [--reuse] [--without-fk]
           [--wal-compression zstd] [--interleaved | --inline] [--drop]

A database of its own (``--database``, default ``topview_wal_bench``; never the test
database) is created afresh and migrated: ``--schema before`` stops at migration 0006
(the indexes before the index diet), ``after`` runs every migration. ``--rows`` notices
are generated with ``generate_series`` (each its own processed task, random 32-hex uuid
and task id, the benchmark's M2V_PREVIEW body, received over the last ten days, 1%
failed), then ``VACUUM ANALYZE`` and ``CHECKPOINT``. Then, through the app's own code:

- store: ``--notices`` new notices, each by ``processing.store`` in its own transaction
  (what the endpoint does with ``PROCESSING`` "manual", "celery" or "tasks");
- process: each of them by ``processing.process_due(notice_id=...)`` (a Celery job's
  attempt, ``BATCH_SIZE`` 1): its task recorded, receivers (none), the notice marked.

WAL is the ``pg_current_wal_lsn()`` difference over each phase (nothing else may write to
the server meanwhile: the script reports what the whole server wrote), split with
``pg_walinspect`` into full-page images and by relation. ``--reuse`` measures again on the
database as it is (no new rows, no checkpoint unless asked again by the phases: each run
starts with one). ``--without-fk`` drops the notice-to-task foreign key constraint first.
``--interleaved`` processes each notice right after storing it (one phase: what a
notice costs when a worker takes it at once). ``--inline`` instead stores each with its
outcome recorded, in one transaction (``processing.receive``: the default,
``PROCESSING="inline"``). ``--wal-compression zstd`` (or lz4) sets it
for the measuring session. ``--drop`` drops the database at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid as uuidlib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULT = (
    '{"previewVideos":[{"coverUrl":"https://aigc.s3.amazonaws.com/analyzed_video/task/export/'
    '487a84446461405088b751861d497dfd.jpg","scriptId":0,"status":"success",'
    '"videoDuration":36096000,"videoUrl":"https://aigc.s3.amazonaws.com/analyzed_video/task/'
    'export/487a84446461405088b751861d497dfd_topview.ai.mp4"}],"status":"success",'
    '"taskId":"TASK"}'
)
HEADERS = '{"Content-Type": "application/json", "Topview-Uid": "bench-uid", "User-Agent": "x"}'


def body(uuid: str, task_id: str) -> str:
    result = RESULT.replace("TASK", task_id).replace('"', '\\"')
    return (
        f'{{"uuid":"{uuid}","bizType":"M2V_PREVIEW","taskId":"{task_id}","status":"success",'
        f'"errorMsg":"","result":"{result}"}}'
    )


def server(sql: str, database: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=database) as conn:
        conn.autocommit = True
        conn.execute(sql)


def fill(rows: int) -> None:
    """``rows`` processed notices, each with its own final task, in two statements."""
    from django.db import connection

    result_sql = "replace(%(result)s, 'TASK', md5('t' || i))::jsonb"
    body_sql = (
        '\'{"uuid":"\' || md5(\'u\' || i) || \'","bizType":"M2V_PREVIEW","taskId":"\' '
        '|| md5(\'t\' || i) || \'","status":"success","errorMsg":"","result":"\' '
        "|| replace(replace(%(result)s, 'TASK', md5('t' || i)), '\"', '\\\"') || '\"}'"
    )
    when = "now() - interval '10 days' * (%(rows)s - i) / %(rows)s"
    params = {"rows": rows, "result": RESULT}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO topview_callbacks_submittedtask
              (account, biz_type, task_id, notice_uuid, status, previous_status,
               request_payload, result, error_message, submitted_at, completed_at,
               next_poll_at, poll_count, updated_at)
            SELECT 'default', 'M2V_PREVIEW', md5('t' || i), md5('u' || i),
                   CASE WHEN i %% 100 = 0 THEN 'fail' ELSE 'success' END, 'running', '{{}}',
                   {result_sql}, '', {when} - interval '3 minutes', {when}, NULL, 0, {when}
            FROM generate_series(1, %(rows)s) AS i ORDER BY i
            """,
            params,
        )
        cursor.execute(
            f"""
            INSERT INTO topview_callbacks_notice
              (uuid, account, biz_type, task_id, status, error_message, result, raw_body,
               headers, remote_addr, source, received_at, state, attempts, last_error,
               next_attempt_at, claimed_at, claim, processed_at, submitted_task_id)
            SELECT md5('u' || i), 'default', 'M2V_PREVIEW', md5('t' || i),
                   CASE WHEN i %% 100 = 0 THEN 'fail' ELSE 'success' END, '',
                   {result_sql}, {body_sql}, %(headers)s::jsonb, '203.0.113.7', 'callback',
                   {when}, CASE WHEN i %% 100 = 0 THEN 'failed' ELSE 'processed' END, 1,
                   CASE WHEN i %% 100 = 0 THEN 'Traceback ... ValueError: boom' ELSE '' END,
                   NULL, {when}, '', {when}, i
            FROM generate_series(1, %(rows)s) AS i ORDER BY i
            """,
            {**params, "headers": HEADERS},
        )


def prepare(args: argparse.Namespace) -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    if args.schema == "before":
        call_command("migrate", "topview_callbacks", "0006", verbosity=0)
    start = time.perf_counter()
    fill(args.rows)
    print(f"filled {args.rows:,} notices and tasks in {time.perf_counter() - start:.0f} s")
    connection.close()
    for table in ("topview_callbacks_notice", "topview_callbacks_submittedtask"):
        server(f"VACUUM ANALYZE {table}", args.database)


def lsn() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        return str(cursor.fetchone()[0])


def wal_between(start: str, end: str) -> dict[str, Any]:
    """This database's WAL between two LSNs: bytes, full-page images, bytes by relation.

    Other databases on the server may write meanwhile: only records of this database's
    relations count, and the transaction records (commits) of the transactions that wrote
    them. ``server_bytes`` is the whole server's LSN difference, for comparison."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_wal_lsn_diff(%s, %s), oid FROM pg_database "
            "WHERE datname = current_database()",
            [end, start],
        )
        server_bytes, database = cursor.fetchone()
        cursor.execute(
            "SELECT resource_manager, record_type, record_length, fpi_length, block_ref, xid "
            "FROM pg_get_wal_records_info(%s, %s)",
            [start, end],
        )
        records = cursor.fetchall()
        cursor.execute(
            "SELECT pg_relation_filenode(oid), relname FROM pg_class "
            "WHERE pg_relation_filenode(oid) IS NOT NULL"
        )
        names = {str(node): name for node, name in cursor.fetchall()}
    mine = re.compile(rf"rel \d+/{database}/(\d+)")
    ours = {xid for *_rest, block_ref, xid in records if mine.search(block_ref or "")}
    ours.discard(0)
    by_relation: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = fpis = fpi_bytes = 0
    for manager, kind, length, fpi_length, block_ref, xid in records:
        node = mine.search(block_ref or "")
        if node is None and not (manager == "Transaction" and xid in ours):
            continue
        total += length
        fpis += (block_ref or "").count("FPW")
        fpi_bytes += fpi_length
        relation = names.get(node[1], "other") if node else "commit records"
        by_relation[relation] += length
        kinds[f"{manager}/{kind}"] += 1
    return {
        "bytes": total,
        "server_bytes": int(server_bytes),
        "fpis": fpis,
        "fpi_bytes": fpi_bytes,
        "by_relation": by_relation,
        "kinds": kinds,
    }


def checkpoint() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def checkpoints() -> int:
    """Checkpoints the server has made so far (one in a phase adds page images)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        return int(cursor.fetchone()[0])


def keep_wal() -> None:
    """Keep the WAL from here on until this session ends (a temporary replication slot),
    so that pg_walinspect can still read it after the server's checkpoints."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_create_physical_replication_slot(%s, true, true)",
            [f"wal_bench_{os.getpid()}"],
        )


def report(name: str, wal: dict[str, Any], count: int, seconds: float) -> None:
    print(
        f"{name}: {wal['bytes'] / count:,.0f} B of WAL per notice "
        f"({wal['fpis'] / count:.2f} full-page images, {wal['fpi_bytes'] / count:,.0f} B of "
        f"them), {seconds / count * 1000:.2f} ms per notice; the whole server wrote "
        f"{wal['server_bytes'] / count:,.0f} B per notice meanwhile"
    )
    for relation, size in wal["by_relation"].most_common(12):
        print(f"    {relation:48} {size / count:9,.0f} B")
    locks = {kind: n for kind, n in wal["kinds"].items() if "LOCK" in kind}
    if locks:
        print(f"    row-lock records: {locks}")


def measure(args: argparse.Namespace) -> None:
    from django.db import connection, transaction

    from topview_callbacks import processing

    prefix = uuidlib.uuid4().hex[:8]
    keep_wal()
    if args.wal_compression:
        with connection.cursor() as cursor:  # this session's WAL only (superuser)
            cursor.execute(
                "SELECT set_config('wal_compression', %s, false)", [args.wal_compression]
            )
    checkpoint()
    before = checkpoints()
    start, began = lsn(), time.perf_counter()
    ids = []
    for _ in range(args.notices):
        uuid, task_id = uuidlib.uuid4().hex, uuidlib.uuid4().hex
        values = {
            "uuid": uuid,
            "account": "default",
            "biz_type": "M2V_PREVIEW",
            "task_id": task_id,
            "status": "success",
            "error_message": "",
            "result": json.loads(RESULT.replace("TASK", task_id)),  # as the rows filled
            "raw_body": body(uuid, task_id),
            "headers": {"Content-Type": "application/json", "Topview-Uid": prefix},
            "remote_addr": "203.0.113.7",
        }
        if args.inline:  # stored with its outcome, in one transaction
            received = processing.receive(values)
            assert received.notice is not None and received.notice.state == "processed"
            ids.append(received.notice.pk)
            continue
        with transaction.atomic():
            received = processing.store(values)
        assert received.notice is not None
        ids.append(received.notice.pk)
        if args.interleaved:  # a worker picking it up at once, as Celery does
            processing.process_due(notice_id=received.notice.pk, limit=1)
    if args.interleaved or args.inline:
        end = lsn()
        print(f"checkpoints by the server meanwhile: {checkpoints() - before}")
        seconds = time.perf_counter() - began
        name = "inline: stored with its outcome" if args.inline else "store, then process at once"
        report(name, wal_between(start, end), len(ids), seconds)
        return
    stored, store_seconds = lsn(), time.perf_counter() - began
    began = time.perf_counter()
    for notice_id in ids:
        done = processing.process_due(notice_id=notice_id, limit=1).notices
        assert done and done[0].state == "processed", notice_id
    end, process_seconds = lsn(), time.perf_counter() - began
    print(f"checkpoints by the server during the phases: {checkpoints() - before}")
    report("store", wal_between(start, stored), len(ids), store_seconds)
    report("process", wal_between(stored, end), len(ids), process_seconds)
    report("both", wal_between(start, end), len(ids), store_seconds + process_seconds)


def sizes() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("topview_callbacks_notice", "topview_callbacks_submittedtask"):
            cursor.execute(
                f"SELECT count(*), pg_table_size(%s), pg_indexes_size(%s) FROM {table}",
                [table, table],
            )
            rows, heap, indexes = cursor.fetchone()
            print(
                f"{table}: {rows:,} rows, {heap / rows:,.0f} B heap + "
                f"{indexes / rows:,.0f} B indexes per row"
            )
            cursor.execute(
                "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                "WHERE relname = %s ORDER BY 2 DESC",
                [table],
            )
            for name, size in cursor.fetchall():
                print(f"    {name:48} {size / rows:6.1f} B per row")


def settings_line() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('wal_compression'), "
            "current_setting('full_page_writes'), current_setting('shared_buffers'), "
            "current_setting('checkpoint_timeout')"
        )
        version, compression, fpw, buffers, timeout = cursor.fetchone()
    return (
        f"PostgreSQL {version}, wal_compression={compression}, full_page_writes={fpw}, "
        f"shared_buffers={buffers}, checkpoint_timeout={timeout}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--notices", type=int, default=1_000)
    parser.add_argument("--schema", choices=("after", "before"), default="after")
    parser.add_argument("--database", default="topview_wal_bench")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--without-fk", action="store_true")
    parser.add_argument("--drop", action="store_true")
    path = parser.add_mutually_exclusive_group()
    path.add_argument("--interleaved", action="store_true", help="process each at once")
    path.add_argument(
        "--inline", action="store_true", help="PROCESSING='inline': one transaction each"
    )
    parser.add_argument("--wal-compression", help="e.g. zstd or lz4, for this session")
    args = parser.parse_args()

    os.environ["BENCH_DATABASE"] = args.database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    if not args.reuse:
        server(f'DROP DATABASE IF EXISTS "{args.database}"')
        server(f'CREATE DATABASE "{args.database}"')
    server("CREATE EXTENSION IF NOT EXISTS pg_walinspect", args.database)
    import django

    django.setup()
    from django.db import connection

    if not args.reuse:
        prepare(args)
    if args.without_fk:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = 'topview_callbacks_notice'::regclass"
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE topview_callbacks_notice DROP CONSTRAINT {name}")
    print(settings_line())
    print(f"schema {args.schema}, {args.notices:,} notices measured; load {os.getloadavg()}")
    sizes()
    measure(args)
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    connection.close()
    if args.drop:
        server(f'DROP DATABASE "{args.database}"')


if __name__ == "__main__":
    main()
