"""The notice endpoint under ASGI servers against gunicorn's sync workers, same run.

Every server serves bench.settings (the example project on PostgreSQL, DEBUG off, inline
processing) with the same number of worker processes; wrk POSTs new notices
(bench/post_notice.lua) to each candidate in turn, round by round, the order alternating,
so all see the same machine. The candidates: gunicorn sync (the baseline) and gthread;
uvicorn with psycopg's pool and with a connection per request (and, ``--asgi-connections
kept``, with CONN_MAX_AGE: under ASGI it opens a connection per request and never closes
it, until PostgreSQL refuses clients); the endpoint's async view
(``topview_callbacks.urls_async``) on the pooled uvicorn; gunicorn with uvicorn-worker's
worker class and granian, with the pool, when installed. Needs PostgreSQL (PGPORT, else
5432; BENCH_DATABASE names the database), wrk and the ``bench`` dependency group
(``pip install --group bench``). Usage:

    .venv/bin/python bench/servers.py [--duration 8] [--rounds 5] [--workers 2]

Run it on a quiet machine: the figures say nothing while other work shares the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import DATABASE, ROOT, ensure_database, load, serving, sql, start_gunicorn, wrk


def asgi_command(server: str, port: int, workers: int) -> list[str]:
    """The command serving bench/asgi.py with ``server``: uvicorn, gunicorn with
    uvicorn-worker's worker class, or granian."""
    binary = str(Path(sys.executable).with_name(server))
    app = "bench.asgi:application"
    if server == "gunicorn":
        worker = "uvicorn_worker.UvicornWorker"
        return [binary, app, f"--bind=127.0.0.1:{port}", f"--workers={workers}",
                f"--worker-class={worker}", "--log-level=warning"]  # fmt: skip
    if server == "granian":
        return [binary, "--interface=asgi", "--host=127.0.0.1", f"--port={port}",
                f"--workers={workers}", "--log-level=warning", app]  # fmt: skip
    return [binary, app, "--host=127.0.0.1", f"--port={port}", f"--workers={workers}",
            "--log-level=warning", "--no-access-log"]  # fmt: skip


def start_asgi(server: str, port: int, workers: int, connections: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_PROCESSING": "inline",
        "BENCH_CONNECTIONS": connections,
    }
    command = asgi_command(server, port, workers)
    return serving(subprocess.Popen(command, cwd=ROOT, env=env), port, server)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


NOTICE = "/topview/notice/"
# The endpoint's async view (topview_callbacks.urls_async), served beside the sync one.
ASYNC = "/async/notice/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    parser.add_argument("--port", type=int, default=8851)
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per gthread worker (0: no gthread run)"
    )
    parser.add_argument(
        "--asgi-connections",
        nargs="+",
        choices=("pool", "closed", "kept"),
        default=["pool", "closed"],
        help="uvicorn with psycopg's pool (needs psycopg[pool]), a connection per request "
        "(closed) or CONN_MAX_AGE (kept: under ASGI it opens one per request and never closes "
        "them, until PostgreSQL refuses more clients)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "uvicorn"):
        if not shutil.which(tool, path=f"{Path(sys.executable).parent}:{os.environ['PATH']}"):
            raise SystemExit(f"{tool} is not installed")

    ensure_database(DATABASE)
    sql("TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask CASCADE")
    print(f"load before: {load()}")
    processes: list[subprocess.Popen[bytes]] = []
    # Each candidate: a server's port and the path its requests go to.
    candidates: dict[str, tuple[int, str]] = {}
    runs: dict[str, list[dict[str, float]]] = {}
    tag = str(int(time.time()))
    try:
        processes.append(start_gunicorn(args.port, "inline", args.workers))
        candidates["gunicorn sync"] = (args.port, NOTICE)
        if args.threads:
            port = args.port + 9
            processes.append(start_gunicorn(port, "inline", args.workers, threads=args.threads))
            candidates[f"gunicorn gthread x{args.threads}"] = (port, NOTICE)
        for number, connections in enumerate(args.asgi_connections, start=1):
            port = args.port + number
            processes.append(start_asgi("uvicorn", port, args.workers, connections))
            candidates[f"uvicorn, {connections}"] = (port, NOTICE)
            if connections == "pool":
                candidates["uvicorn, pool, async view"] = (port, ASYNC)
        # Other ASGI servers, with the pool, when installed.
        others = {"gunicorn": "uvicorn_worker", "granian": "granian"}
        for number, (server, module) in enumerate(others.items(), start=5):
            if installed(module):
                processes.append(start_asgi(server, args.port + number, args.workers, "pool"))
                name = "gunicorn+uvicorn" if server == "gunicorn" else server
                candidates[f"{name}, pool"] = (args.port + number, NOTICE)
        for port, path in candidates.values():  # warm up
            wrk(f"http://127.0.0.1:{port}{path}", "new", f"{tag}-warm-{port}{path}", 2, 4)
        for round_number in range(args.rounds):
            names = list(candidates)
            if round_number % 2:  # alternate who goes first
                names.reverse()
            for index, name in enumerate(names):
                port, path = candidates[name]
                prefix = f"{tag}-{round_number}-{index}"
                url = f"http://127.0.0.1:{port}{path}"
                result = wrk(url, "new", prefix, args.duration, args.connections)
                result["stored"] = sql(
                    f"SELECT count(*) FROM topview_callbacks_notice WHERE uuid LIKE '{prefix}-%'"
                )[0][0]
                runs.setdefault(name, []).append(result)
                print(f"round {round_number + 1} {name:25} {result}", flush=True)
            print(f"load after round {round_number + 1}: {load()}", flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    print(f"load after: {load()}")
    print()
    print(
        f"{args.workers} processes per server, inline processing, wrk -t2 "
        f"-c{args.connections} -d{args.duration}s, medians of {args.rounds} interleaved rounds"
    )
    base = statistics.median(r["rps"] for r in runs["gunicorn sync"])
    print(f"{'server':25} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs sync':>7}  per round")
    for name, rows in runs.items():
        rps = statistics.median(r["rps"] for r in rows)
        p50 = statistics.median(r["p50_ms"] for r in rows)
        p99 = statistics.median(r["p99_ms"] for r in rows)
        rounds = ", ".join(
            f"{r['rps'] / b['rps']:.2f}" for r, b in zip(rows, runs["gunicorn sync"], strict=True)
        )
        print(f"{name:25} {rps:7.0f} {p50:7.2f} {p99:7.2f} {rps / base:7.2f}  {rounds}")
    bad = sum(r["non_2xx"] for rows in runs.values() for r in rows)
    lost = [r for rows in runs.values() for r in rows if r["stored"] < r["requests"] - r["non_2xx"]]
    print(f"non-2xx answers: {bad}; runs where stored rows < answered requests: {len(lost)}")


if __name__ == "__main__":
    main()
