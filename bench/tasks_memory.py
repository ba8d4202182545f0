"""Resident memory of a Django Tasks worker (django-tasks-db) over 100,000 notices.

Issue 14: the worker's resident memory after 100k notices must be within 10% of what it
was after 10k (no leak per notice). This process stores notices the way the endpoint does
(``Notice.objects.record_delivery``) and enqueues each (``tasks_framework.enqueue_notice``,
on django-tasks-db's DatabaseBackend), keeping the backlog under ``--backlog``; one
``db_worker`` (tests/test_tasks_worker.py's, with the recording receiver) processes them.
Its VmRSS is read from /proc at every 10% of the way.

PostgreSQL's autovacuum keeps the task table's statistics fresh; where it is off (as on the
development machine), django-tasks-db's claim query slows down as finished task rows pile
up: run ``VACUUM ANALYZE`` on the database now and then, or prune them.

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and django-tasks-db.
Usage: .venv/bin/python bench/tasks_memory.py [--notices 100000] [--backlog 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Its own database: an hour-long run must not share tables that celery_rate.py empties.
os.environ.setdefault("TOPVIEW_BENCH_DATABASE", "topview_bench_tasks_memory")

from bench.celery_rate import DATABASE, ensure_database, processed, sql  # noqa: E402
from tests.test_celery_worker import QUEUE, cleanup_redis, fired  # noqa: E402
from tests.test_tasks_worker import TASKS_MODE, tasks_worker  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def setup_django() -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="tests.settings", TOPVIEW_TEST_DATABASE="postgres")
    os.environ["PGDATABASE"] = DATABASE
    import django
    from django.conf import settings

    django.setup()
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, **TASKS_MODE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=100_000)
    parser.add_argument("--backlog", type=int, default=2000, help="most notices waiting")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="give up after (s)")
    args = parser.parse_args()

    ensure_database()
    sql(
        "TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask, "
        "django_tasks_database_dbtaskresult"
    )
    cleanup_redis()
    setup_django()
    from topview_callbacks import tasks_framework
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import notice_payload

    worker = tasks_worker(DATABASE, quiet=True)
    assert worker.proc is not None
    pid = worker.proc.pid
    print(
        f"one db_worker (pid {pid}) on queue {QUEUE}; {args.notices} notices; "
        f"backlog at most {args.backlog}",
        flush=True,
    )
    step = args.notices // 10
    marks: dict[int, int] = {0: rss_kib(pid)}
    print(f"  {0:>7} processed: VmRSS {marks[0] / 1024:.1f} MiB", flush=True)
    started = time.monotonic()
    sent = done = 0
    try:
        while done < args.notices:
            done = processed()
            while sent < args.notices and sent - done < args.backlog:
                body = notice_payload("M2V_PREVIEW", uuid=uuid.uuid4().hex)
                stored = Notice.objects.record_delivery(
                    uuid=body["uuid"],
                    biz_type=body["bizType"],
                    task_id=body["taskId"],
                    status=body["status"],
                    error_message="",
                    result=json.loads(body["result"]),
                    raw_body=json.dumps(body),
                )
                tasks_framework.enqueue_notice(stored.notice_id)
                sent += 1
            mark = (done // step) * step
            if mark and mark not in marks:
                marks[mark] = rss_kib(pid)
                rate = done / (time.monotonic() - started)
                print(
                    f"  {mark:>7} processed: VmRSS {marks[mark] / 1024:.1f} MiB "
                    f"({rate:.0f} notices/s so far)",
                    flush=True,
                )
            if time.monotonic() - started > args.timeout:
                print(f"  gave up after {args.timeout:.0f} s at {done} processed")
                break
            time.sleep(0.2)
    finally:
        worker.stop()
        worker.log.unlink(missing_ok=True)
    twice = sum(1 for count in fired().values() if count > 1)
    cleanup_redis()
    if len(marks) < 3:
        return
    first, last = min(m for m in marks if m), max(marks)  # a fast worker may skip a mark
    growth = marks[last] / marks[first] - 1
    print(
        f"after {last}: {marks[last] / 1024:.1f} MiB; after {first}: "
        f"{marks[first] / 1024:.1f} MiB; growth {growth:+.1%} (limit +10%); "
        f"fired twice: {twice}"
    )


if __name__ == "__main__":
    main()
