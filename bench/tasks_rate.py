"""End-to-end rate through Django's Tasks framework (django-tasks-db), next to the receive rate.

The harness of bench/celery_rate.py with ``PROCESSING="tasks"``: gunicorn stores each notice
and, after its commit, asks for a drain (django-tasks-db's DatabaseBackend, same
PostgreSQL: at most one task row per web process and ``jobs.DRAIN_WINDOW``, and one at the
window's end); ``db_worker`` processes (one task at a time each) take the task rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` and run ``tasks_framework.process_notices``, which
attempts the due notices in batches it sizes itself. Reported as there: receive rate,
end-to-end rate, drain rate, received -> signal latency (p50, p99), and the web alone
receiving (``PROCESSING="manual"``) in the same rounds.

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 (database 14, or
``TOPVIEW_TEST_REDIS_DB``, where the receiver counts), wrk, and django-tasks-db (in the
``dev`` dependency group).
Usage: .venv/bin/python bench/tasks_rate.py [--duration 10] [--workers 2] [--interval 0.1]
       [--rounds 3] [--tasks known unknown] [--no-web-alone]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.celery_rate import (  # noqa: E402  (needs ROOT on sys.path)
    DATABASE,
    Queue,
    common_arguments,
    ensure_database,
    rounds,
)
from tests.support.processes import TASKS_MODE, Service, tasks_worker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, help="db_worker processes")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="db_worker's wait when idle (seconds)"
    )
    args = parser.parse_args()

    def workers(args: argparse.Namespace, overrides: dict[str, Any]) -> list[Service]:
        return [
            tasks_worker(DATABASE, overrides=overrides, interval=args.interval, quiet=True)
            for _ in range(args.workers)
        ]

    ensure_database()
    queue = Queue(
        name="tasks",
        overrides=dict(TASKS_MODE),
        start_workers=workers,
        tables=["django_tasks_database_dbtaskresult"],
        describe=f"{args.workers} django-tasks-db db_worker(s), --interval {args.interval}",
    )
    rounds(args, queue)


if __name__ == "__main__":
    main()
