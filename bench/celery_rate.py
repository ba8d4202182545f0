"""End-to-end rate through Celery on Redis, next to the receive rate, in one run.

gunicorn (PROCESSING="celery") takes notices from wrk for --duration seconds while a Celery
worker (prefork) processes them from Redis: received -> stored -> queued -> claimed -> task
recorded -> signal -> processed. Reported side by side:

- receive rate: acknowledged deliveries per second (wrk);
- end-to-end rate: processed notices per second, from the first request to the last notice
  processed (the receiver counts in Redis, so "processed" means the signal fired);
- drain rate: the same once wrk has stopped (the worker's own rate).

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 (database 14) and wrk.
Usage: .venv/bin/python bench/celery_rate.py [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_celery_worker import (  # noqa: E402  (needs ROOT on sys.path)
    celery_worker,
    cleanup_redis,
    fired,
    gunicorn,
    process_env,
)

DATABASE = "topview_bench_celery"


def ensure_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        cwd=ROOT,
        env=process_env(DATABASE),
        check=True,
    )
    sql("TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask")


def sql(query: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DATABASE}") as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk (default 10)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, help="max seconds to drain")
    args = parser.parse_args()

    ensure_database()
    cleanup_redis()
    overrides = {"UID": "bench-uid", "PROCESSING": "celery"}
    services = []
    try:
        worker = celery_worker(DATABASE, concurrency=args.celery_concurrency, loglevel="warning")
        services.append(worker)
        web, port = gunicorn(DATABASE, workers=args.web_workers, overrides=overrides)
        services.append(web)
        env = {**os.environ, "BENCH_MODE": "new", "BENCH_PREFIX": f"celery-{time.time_ns()}"}
        started = time.monotonic()
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "-s",
                str(ROOT / "bench" / "post_notice.lua"),
                f"http://127.0.0.1:{port}/topview/notice/",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        received_at = time.monotonic()
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        stored = int(sql("SELECT count(*) FROM topview_callbacks_notice")[0][0])  # type: ignore[arg-type]
        processed_at_receive_end = len(fired())
        deadline = received_at + args.timeout
        done = processed_at_receive_end
        while time.monotonic() < deadline:
            time.sleep(0.2)
            # Requests in flight when wrk stopped are stored a little later: count again.
            stored = int(sql("SELECT count(*) FROM topview_callbacks_notice")[0][0])  # type: ignore[arg-type]
            done = len(fired())
            if done >= stored:
                break
        finished = time.monotonic()
    finally:
        for service in reversed(services):
            service.stop()
            service.log.unlink(missing_ok=True)
        cleanup_redis()
    twice = sum(1 for count in fired().values() if count > 1)
    receive_rate = requests / (received_at - started)
    e2e_rate = done / (finished - started)
    drain_rate = (done - processed_at_receive_end) / max(finished - received_at, 1e-9)
    print(
        f"wrk -t2 -c{args.connections} -d{args.duration}s, gunicorn sync -w{args.web_workers}, "
        f"celery prefork -c{args.celery_concurrency}"
    )
    print(f"  deliveries acknowledged : {requests} ({errors.group(1) if errors else 0} non-2xx)")
    print(f"  notices stored          : {stored}; processed (signal fired): {done}; twice: {twice}")
    print(f"  receive rate            : {receive_rate:8.0f} /s")
    share = e2e_rate / receive_rate
    print(f"  end-to-end rate         : {e2e_rate:8.0f} /s  ({share:.0%} of the receive rate)")
    print(f"  drain rate after wrk    : {drain_rate:8.0f} /s")
    print(f"  processed while receiving: {processed_at_receive_end} of {stored}")


if __name__ == "__main__":
    main()
