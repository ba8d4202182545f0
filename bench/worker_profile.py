"""Where a queue worker's time goes: cProfile around the notice job, in one process.

Stores ``--notices`` notices pending (as ``PROCESSING="manual"`` does), then runs the job
both queues run (``jobs.process_notices``: drains, a batch per transaction) here, under
cProfile, with bench/celery_rate.py's receiver connected (``--receiver``: by default one
Redis round trip per transaction; ``recording``, the tests' two per notice), until nothing
is due. Reported: notices per second, this process's CPU per notice, the CPU of its
PostgreSQL backend per notice (from /proc: PostgreSQL must run on this machine), and the
functions that took the time. Celery's or django-tasks-db's own cost per job is not in it:
a job drains many notices.

Needs PostgreSQL on 127.0.0.1:5432 (its own database, topview_bench_profile) and Redis on
127.0.0.1:6379 (database 14, or ``TOPVIEW_TEST_REDIS_DB``).
Usage: .venv/bin/python bench/worker_profile.py [--notices 3000] [--tasks known|unknown]
       [--top 25]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The script's own directory comes first on sys.path, and bench/profile.py would shadow the
# standard library's profile module, which cProfile imports.
sys.path[0] = str(ROOT)

import cProfile  # noqa: E402
import pstats  # noqa: E402

os.environ.setdefault("TOPVIEW_BENCH_DATABASE", "topview_bench_profile")
os.environ.setdefault("TOPVIEW_TEST_PREFIX", f"topview-bench-profile-{os.getpid()}")

from bench.celery_rate import (  # noqa: E402
    DATABASE,
    deliver_as_the_view,
    ensure_database,
    sql,
    submit_tasks,
)
from tests.support.recording import cleanup_redis, fired  # noqa: E402


def backend_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) PostgreSQL's backend process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def setup_django() -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="tests.settings", TOPVIEW_TEST_DATABASE="postgres")
    os.environ["PGDATABASE"] = DATABASE
    import django
    from django.conf import settings

    # Before setup: the package keeps the dict it first reads until setting_changed.
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "manual"}
    django.setup()


def store(count: int, known: bool) -> None:
    """``count`` pending notices, delivered as the view delivers them."""
    from topview_callbacks.testing import notice_payload

    prefix = f"profile-{time.time_ns()}"
    if known:
        submit_tasks(prefix, per_thread=count)  # rows for <prefix>-1-<n> and <prefix>-2-<n>
    for n in range(1, count + 1):
        body = notice_payload("M2V_PREVIEW", uuid=uuid.uuid4().hex, task_id=f"{prefix}-1-{n}")
        deliver_as_the_view(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=3000)
    parser.add_argument("--tasks", choices=("known", "unknown"), default="unknown")
    parser.add_argument(
        "--receiver",
        choices=("counting", "recording"),
        default="counting",
        help="as bench/celery_rate.py's: one Redis round trip per transaction (default), or "
        "the tests' two per notice",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=25,
        help="functions listed (default 25); 0: no cProfile, only the clocks (cProfile "
        "inflates this process's CPU)",
    )
    args = parser.parse_args()

    ensure_database()
    sql("TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask CASCADE")
    cleanup_redis()
    setup_django()
    from django.db import connection

    from tests.support import recording
    from topview_callbacks import jobs, signals

    store(args.notices, known=args.tasks == "known")
    receiver = getattr(recording, f"{args.receiver}_receiver")
    signals.task_outcome.connect(receiver, dispatch_uid="bench-profile")
    asked: list[str] = []
    queue = jobs.Queue(
        enqueue_notice=lambda row_id, delay=None: asked.append(f"notice {row_id}"),
        enqueue_media=lambda row_id, delay=None: asked.append(f"media {row_id}"),
        request_drain=lambda: asked.append("drain"),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    load = os.getloadavg()[0]
    profile = cProfile.Profile()
    cpu, backend_before, started = time.process_time(), backend_cpu(backend), time.perf_counter()
    done = 0
    if args.top:
        profile.enable()
    while ran := jobs.process_notices(queue):
        done += ran
    profile.disable()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    backend_used = backend_cpu(backend) - backend_before
    runs = fired()
    twice = sum(1 for count in runs.values() if count > 1)
    cleanup_redis()
    print(
        f"{done} notices ({args.tasks} tasks) drained in {wall:.2f} s = {done / wall:.0f}/s "
        f"(load {load:.1f} -> {os.getloadavg()[0]:.1f}); per notice: {wall / done * 1e3:.2f} ms "
        f"wall, {cpu / done * 1e3:.2f} ms CPU in this process"
        f"{' (profiled: cProfile inflates it)' if args.top else ''}, "
        f"{backend_used / done * 1e3:.2f} ms CPU in its PostgreSQL backend; "
        f"{len(runs)} fired, {twice} twice; asked for {len(asked)} job(s)"
    )
    for order in ("tottime", "cumulative") if args.top else ():
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(args.top)
        print(f"--- by {order} ---")
        print(out.getvalue().split("\n\n", 1)[-1].strip())


if __name__ == "__main__":
    main()
