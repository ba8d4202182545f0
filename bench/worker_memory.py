"""Resident memory of a worker over 100,000 notices: Celery (prefork) or Django Tasks.

Issue 14: a worker's resident memory after 100k notices must be within 10% of what it was
after 10k (no leak per notice). This process delivers notices the way the endpoint does
(``dispatch.deliver``: stored pending, then a drain asked for as the view asks for one,
with the default settings), keeping the backlog under ``--backlog``; one worker (the Celery
prefork worker or the ``db_worker`` the tests start, from tests/support/processes.py, each
with the recording receiver) processes them. The VmRSS of every process of the worker (a
prefork worker's main process and its pool children) is read from /proc at every 10% of
the way.

PostgreSQL's autovacuum keeps django-tasks-db's task table analyzed; where it is off (as on
the development machine), its claim query slows down as finished task rows pile up: this
script runs ``VACUUM ANALYZE`` on that table every ``--vacuum-every`` notices.

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 (database 14, or
``TOPVIEW_TEST_REDIS_DB``), and django-tasks-db for ``--queue tasks``.
Usage: .venv/bin/python bench/worker_memory.py --queue celery|tasks [--notices 100000]
       [--concurrency 2] [--backlog 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Its own database: an hour-long run must not share tables that celery_rate.py empties.
os.environ.setdefault("TOPVIEW_BENCH_DATABASE", "topview_bench_memory")

from bench.celery_rate import (  # noqa: E402
    DATABASE,
    deliver_as_the_view,
    ensure_database,
    processed,
    sql,
)
from tests.support.processes import TASKS_MODE, Service, celery_worker, tasks_worker  # noqa: E402
from tests.support.recording import QUEUE, cleanup_redis, fired  # noqa: E402

TASK_TABLE = "django_tasks_database_dbtaskresult"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def worker_processes(leader: int) -> list[int]:
    """The worker's processes: its session (the harness starts each worker in its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces, so split after ")".
        session = int(stat.rsplit(")", 1)[1].split()[3])
        if session == leader:
            pids.append(int(entry.name))
    return sorted(pids)


def measure(leader: int) -> dict[int, int]:
    sizes = {}
    for pid in worker_processes(leader):
        try:
            sizes[pid] = rss_kib(pid)
        except (OSError, RuntimeError):
            continue
    return sizes


def setup_django(overrides: dict[str, object]) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="tests.settings", TOPVIEW_TEST_DATABASE="postgres")
    os.environ["PGDATABASE"] = DATABASE
    import django
    from django.conf import settings

    # Before setup: the package keeps the dict it first reads until setting_changed.
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, **overrides}
    django.setup()


def start_worker(args: argparse.Namespace, overrides: dict[str, object]) -> Service:
    if args.queue == "celery":
        return celery_worker(
            DATABASE, concurrency=args.concurrency, overrides=overrides, loglevel="warning"
        )
    return tasks_worker(DATABASE, overrides=overrides, quiet=True)


def describe(sizes: dict[int, int]) -> str:
    parts = " + ".join(f"{kib / 1024:.1f}" for kib in sizes.values())
    return f"VmRSS {sum(sizes.values()) / 1024:.1f} MiB" + (f" ({parts})" if len(sizes) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", choices=("celery", "tasks"), default="tasks")
    parser.add_argument("--notices", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=2, help="Celery prefork processes")
    parser.add_argument("--backlog", type=int, default=2000, help="most notices waiting")
    parser.add_argument("--vacuum-every", type=int, default=10_000, help="tasks: VACUUM ANALYZE")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="give up after (s)")
    args = parser.parse_args()

    overrides: dict[str, object] = {"PROCESSING": args.queue}
    if args.queue == "tasks":
        overrides.update(TASKS_MODE)
    ensure_database()
    tables = ["topview_callbacks_notice", "topview_callbacks_submittedtask"]
    if args.queue == "tasks":
        tables.append(TASK_TABLE)
    sql(f"TRUNCATE {', '.join(tables)} CASCADE")  # the archived media rows too
    cleanup_redis()
    setup_django(overrides)
    from topview_callbacks.testing import notice_payload

    worker = start_worker(args, overrides)
    assert worker.proc is not None
    leader = worker.proc.pid
    print(
        f"{args.queue} worker (session {leader}, processes {worker_processes(leader)}) on "
        f"queue {QUEUE}; default settings; {args.notices} notices; backlog at most "
        f"{args.backlog}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    step = args.notices // 10
    marks: dict[int, dict[int, int]] = {0: measure(leader)}
    print(f"  {0:>7} processed: {describe(marks[0])}", flush=True)
    started = time.monotonic()
    sent = done = vacuumed = 0
    try:
        while done < args.notices:
            done = processed()
            while sent < args.notices and sent - done < args.backlog:
                body = notice_payload("M2V_PREVIEW", uuid=uuid.uuid4().hex)
                # As the view delivers it; autocommit, so its on_commit runs right away.
                deliver_as_the_view(body)
                sent += 1
            if args.queue == "tasks" and done - vacuumed >= args.vacuum_every:
                sql(f"VACUUM ANALYZE {TASK_TABLE}")
                vacuumed = done
            mark = (done // step) * step
            if mark and mark not in marks:
                marks[mark] = measure(leader)
                rate = done / (time.monotonic() - started)
                print(
                    f"  {mark:>7} processed: {describe(marks[mark])} ({rate:.0f} notices/s "
                    f"so far; load {os.getloadavg()[0]:.1f})",
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
    before, after = sum(marks[first].values()), sum(marks[last].values())
    print(
        f"after {last}: {after / 1024:.1f} MiB; after {first}: {before / 1024:.1f} MiB; "
        f"growth {after / before - 1:+.1%} (limit +10%); fired twice: {twice}; "
        f"{time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
