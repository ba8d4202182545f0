"""End-to-end rate through Celery on Redis, next to the receive rate, in one run.

gunicorn (PROCESSING="celery") takes notices from wrk for --duration seconds while a Celery
worker (prefork) processes them from Redis: received -> stored -> queued -> claimed -> task
recorded -> signal -> processed. Reported side by side:

- receive rate: acknowledged deliveries per second (wrk);
- end-to-end rate: processed notices per second, from the first request to the last notice
  processed (a receiver counts in Redis what fired once its outcome committed: by default
  one round trip per transaction, after the commit; ``--receiver recording``, the tests'
  receiver, makes two per notice, which a receiver doing no network calls would not);
- drain rate: the same once wrk has stopped (the worker's own rate).

Two workloads, one after the other: notices for tasks submitted through the client (their
``SubmittedTask`` rows exist, as in normal use), and notices for tasks never seen before
(the row is created from the notice, which costs a few more statements). Each round also
receives both workloads with ``PROCESSING="manual"`` and no worker at all: the web alone,
which end to end is compared with too (``--no-web-alone`` skips it). Settings are the
defaults a new project gets; the drain sizes its batches itself.

Needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 (database 14, or
``TOPVIEW_TEST_REDIS_DB``) and wrk.
Usage: .venv/bin/python bench/celery_rate.py [--duration 10] [--tasks known unknown]
       [--rounds 3] [--no-web-alone]
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import (  # noqa: E402  (needs ROOT on sys.path)
    Service,
    celery_worker,
    gunicorn,
    process_env,
)
from tests.support.recording import cleanup_redis, fired, fired_at, key, records  # noqa: E402

# bench/tasks_rate.py's too. Each run empties its tables: give a long run its own database.
DATABASE = os.environ.get("TOPVIEW_BENCH_DATABASE", "topview_bench_celery")


@dataclass
class Queue:
    """What the harness needs to know of a processing backend: its settings, its workers,
    and what else to empty between runs. bench/tasks_rate.py measures Django Tasks with it."""

    name: str
    overrides: dict[str, Any]
    # The workers, given the options and the settings web and workers share.
    start_workers: Callable[[argparse.Namespace, dict[str, Any]], list[Service]]
    tables: list[str] = field(default_factory=list)
    describe: str = ""
    # False for the receive-only baseline (PROCESSING="manual"): nothing to wait for.
    processes: bool = True


# The web alone: the same web server storing only, no worker running.
RECEIVE_ONLY = Queue(
    name="manual", overrides={"PROCESSING": "manual"}, start_workers=lambda *_: [], processes=False
)


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


_connection: Any = None


def sql(query: str) -> list[tuple[Any, ...]]:
    """Run a statement on the benchmark database, on one connection kept open (the harness
    polls while the worker drains: a new connection each time would take CPU from it)."""
    global _connection
    import psycopg

    if _connection is None:
        _connection = psycopg.connect(
            f"host=127.0.0.1 user=postgres dbname={DATABASE}", autocommit=True
        )
    cursor = _connection.execute(query)
    return cursor.fetchall() if cursor.description else []


def processed() -> int:
    """Notices whose signal fired (HLEN, not the whole hash: cheap enough to poll)."""
    return int(records().hlen(key("fired")))


def deliver_as_the_view(body: dict[str, Any]) -> None:
    """Hand ``body`` (a ``notice_payload``) to ``dispatch.deliver`` as the view would, in
    process: stored, then processed or queued as ``PROCESSING`` says."""
    from topview_callbacks import dispatch

    dispatch.deliver(
        {
            "uuid": body["uuid"],
            "account": "default",
            "biz_type": body["bizType"],
            "task_id": body["taskId"],
            "status": body["status"],
            "error_message": "",
            "result": json.loads(body["result"]),
            "raw_body": json.dumps(body),
            "headers": {},
            "remote_addr": None,
        }
    )


def submit_tasks(prefix: str, per_thread: int) -> None:
    """Rows for the task ids wrk will send (post_notice.lua: ``<prefix>-<thread>-<n>``)."""
    sql(
        "INSERT INTO topview_callbacks_submittedtask (account, biz_type, task_id, notice_uuid, "
        "status, previous_status, request_payload, error_message, submitted_at, poll_count, "
        "updated_at) "
        f"SELECT 'default', 'M2V_PREVIEW', '{prefix}-' || t || '-' || n, '', 'running', '', "
        "'{}', '', now(), 0, now() "
        f"FROM generate_series(1, 2) t, generate_series(1, {per_thread}) n"
    )


def latencies() -> list[float]:
    """Seconds from each notice's receipt (``received_at``) to its outcome's commit (the
    counting receiver's stamp) or its receiver's last call (the recording receiver's)."""
    received = sql(
        "SELECT uuid, extract(epoch FROM received_at)::float8 FROM topview_callbacks_notice"
    )
    stamps = fired_at([uuid for uuid, _at in received])
    return sorted(
        stamp - float(at)
        for (_uuid, at), stamp in zip(received, stamps, strict=True)
        if stamp is not None
    )


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def run(args: argparse.Namespace, known_tasks: bool, queue: Queue) -> dict[str, float]:
    """One workload: wrk against gunicorn while the workers process; the figures."""
    tables = ["topview_callbacks_notice", "topview_callbacks_submittedtask", *queue.tables]
    sql(f"TRUNCATE {', '.join(tables)} CASCADE")
    cleanup_redis()
    prefix = f"{queue.name}-{time.time_ns()}"
    submitted = 2 * 1500 * args.duration if known_tasks else 0  # more than wrk can send
    if submitted:
        submit_tasks(prefix, per_thread=submitted // 2)
    settings = dict(item.split("=", 1) for item in args.setting)
    overrides = {
        "UID": "bench-uid",
        **queue.overrides,
        **{key: json.loads(value) for key, value in settings.items()},
    }
    services: list[Service] = []
    load = os.getloadavg()[0]
    try:
        services.extend(queue.start_workers(args, overrides))
        web, port = gunicorn(DATABASE, workers=args.web_workers, overrides=overrides)
        services.append(web)
        env = {**os.environ, "BENCH_MODE": "new", "BENCH_PREFIX": prefix}
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
        processed_at_receive_end = processed()
        deadline = received_at + args.timeout if queue.processes else received_at
        caught_up: float | None = None  # when processing first caught up with storing
        previous = -1
        while True:
            # Requests in flight when wrk stopped are stored a little later (and may be
            # processed before this loop sees them stored): done only once a count of
            # stored notices that has stopped growing is all processed.
            stored = int(sql("SELECT count(*) FROM topview_callbacks_notice")[0][0])
            done = processed()
            if done >= stored:
                caught_up = caught_up or time.monotonic()
                if stored == previous:
                    break
            else:
                caught_up = None
            if time.monotonic() > deadline:
                break
            previous = stored
            time.sleep(0.2)
        finished = caught_up or time.monotonic()
        twice = sum(1 for count in fired().values() if count > 1)
        created = int(sql("SELECT count(*) FROM topview_callbacks_submittedtask")[0][0])
        waits = latencies()
        load_end = os.getloadavg()[0]
    finally:
        for service in reversed(services):
            service.stop()
            service.log.unlink(missing_ok=True)
        cleanup_redis()
    return {
        "requests": requests,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "stored": stored,
        "done": done,
        "twice": twice,
        "tasks_from_notices": created - submitted,  # 0 for known tasks
        "receive_rate": requests / (received_at - started),
        "e2e_rate": done / (finished - started),
        "drain_rate": (done - processed_at_receive_end) / max(finished - received_at, 1e-9),
        "processed_while_receiving": processed_at_receive_end,
        "p50_ms": percentile(waits, 0.50) * 1000,
        "p99_ms": percentile(waits, 0.99) * 1000,
        "load": load,
        "load_end": load_end,
    }


def celery_workers(args: argparse.Namespace, overrides: dict[str, Any]) -> list[Service]:
    return [
        celery_worker(
            DATABASE,
            concurrency=args.celery_concurrency,
            overrides=overrides,
            loglevel="warning",
            pool_name=args.pool,
            TOPVIEW_TEST_DB_REUSE_MAX=str(args.db_reuse_max),
        )
    ]


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk (default 10)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=("known", "unknown"),
        default=["known", "unknown"],
        help="workloads: notices for submitted tasks, for tasks never seen (default: both)",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a TOPVIEW_CALLBACKS value other than the default, for web and workers, e.g. "
        "MAX_ATTEMPTS=3 (repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3; medians)")
    parser.add_argument(
        "--no-web-alone",
        dest="web_alone",
        action="store_false",
        help="skip receiving with PROCESSING='manual' and no worker (the web alone) in each "
        "round, and so the comparison of end to end with it",
    )
    parser.add_argument("--timeout", type=float, default=300, help="max seconds to drain")
    parser.add_argument(
        "--receiver",
        choices=("counting", "recording"),
        default="counting",
        help="the receiver that counts what fired: 'counting' (default) sends a transaction's "
        "notices to Redis in one round trip after its commit; 'recording' is the tests' "
        "receiver, two Redis round trips per notice",
    )


def _loads(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def rounds(args: argparse.Namespace, queue: Queue) -> None:
    """``args.rounds`` rounds of each workload, and of the web alone, interleaved; each run,
    then the medians."""
    os.environ["TOPVIEW_TEST_RECEIVER"] = args.receiver  # the workers' (process_env)
    print(
        f"wrk -t2 -c{args.connections} -d{args.duration}s, gunicorn sync -w{args.web_workers}, "
        f"{queue.describe}, {args.receiver} receiver; workloads {args.tasks} interleaved, "
        f"{args.rounds} round(s), "
        f"web alone {'in each round' if args.web_alone else 'not measured'}; settings "
        f"{args.setting or 'default'}",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {workload: [] for workload in args.tasks}
    web_alone: dict[str, list[dict[str, float]]] = {workload: [] for workload in args.tasks}
    for number in range(1, args.rounds + 1):
        for workload, runs in results.items():
            r = run(args, known_tasks=workload == "known", queue=queue)
            runs.append(r)
            print(
                f"  round {number}, {workload} tasks (load {r['load']:.1f} -> "
                f"{r['load_end']:.1f}): {r['requests']:.0f} acknowledged ({r['non_2xx']:.0f} "
                f"non-2xx), {r['stored']:.0f} stored, {r['done']:.0f} processed, "
                f"{r['twice']:.0f} twice, {r['tasks_from_notices']:.0f} tasks created from "
                f"notices; receive {r['receive_rate']:.0f}/s, end to end {r['e2e_rate']:.0f}/s "
                f"({r['e2e_rate'] / r['receive_rate']:.0%}), drain {r['drain_rate']:.0f}/s; "
                f"received -> signal p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms",
                flush=True,
            )
        if args.web_alone:
            for workload in args.tasks:
                r = run(args, known_tasks=workload == "known", queue=RECEIVE_ONLY)
                web_alone[workload].append(r)
                e2e = results[workload][-1]["e2e_rate"]
                print(
                    f"  round {number}, web alone (PROCESSING='manual'), {workload} tasks "
                    f"(load {r['load']:.1f} -> {r['load_end']:.1f}): receive "
                    f"{r['receive_rate']:.0f}/s ({r['non_2xx']:.0f} non-2xx); this round's end "
                    f"to end = {e2e / r['receive_rate']:.0%} of it",
                    flush=True,
                )
    print("medians:")
    for workload, runs in results.items():
        receive = statistics.median(r["receive_rate"] for r in runs)
        e2e = statistics.median(r["e2e_rate"] for r in runs)
        shares = [r["e2e_rate"] / r["receive_rate"] for r in runs]
        drain = statistics.median(r["drain_rate"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        loads = [r["load"] for r in runs] + [r["load_end"] for r in runs]
        print(
            f"  {workload:>7} tasks: receive {receive:5.0f}/s, end to end {e2e:5.0f}/s = "
            f"{statistics.median(shares):.0%} of receive (rounds: "
            f"{', '.join(f'{share:.0%}' for share in shares)}); drain alone {drain:.0f}/s; "
            f"received -> signal p50 {p50:.0f} ms, p99 {p99:.0f} ms; load {_loads(loads)}"
        )
        if web_alone[workload]:
            alone_runs = web_alone[workload]
            alone = statistics.median(r["receive_rate"] for r in alone_runs)
            ratios = [
                r["e2e_rate"] / a["receive_rate"] for r, a in zip(runs, alone_runs, strict=True)
            ]
            alone_loads = [a["load"] for a in alone_runs] + [a["load_end"] for a in alone_runs]
            print(
                f"      web alone receiving {alone:.0f}/s (load {_loads(alone_loads)}); end to "
                f"end = {statistics.median(ratios):.0%} of it (rounds: "
                f"{', '.join(f'{ratio:.0%}' for ratio in ratios)})"
            )
    lost = sum(r["stored"] - r["done"] for runs in results.values() for r in runs)
    twice = sum(r["twice"] for runs in results.values() for r in runs)
    print(f"  lost: {lost:.0f}, fired twice: {twice:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser)
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork", help="Celery pool (prefork, threads)")
    parser.add_argument(
        "--db-reuse-max",
        type=int,
        default=1000,
        help="the worker's CELERY_DB_REUSE_MAX (default 1000; 0: Celery's default, which "
        "closes the database connection after every task)",
    )
    args = parser.parse_args()

    ensure_database()
    queue = Queue(
        name="celery",
        overrides={"PROCESSING": "celery"},
        start_workers=celery_workers,
        describe=f"celery {args.pool} -c{args.celery_concurrency} "
        f"(CELERY_DB_REUSE_MAX={args.db_reuse_max})",
    )
    rounds(args, queue)


if __name__ == "__main__":
    main()
