"""The notice endpoint served by uvicorn (ASGI) against gunicorn (sync WSGI), same run.

Both serve bench.settings (the example project on PostgreSQL, DEBUG off) with the same
number of worker processes; wrk POSTs new notices (bench/post_notice.lua) to one server
then the other, round by round, so both see the same machine. Under ASGI Django runs the
endpoint, a synchronous view, in one thread per process (``thread_sensitive``); Django's
documentation asks for a connection pool instead of ``CONN_MAX_AGE`` there, so uvicorn runs
once with each (``--asgi-connections``). Needs PostgreSQL on 127.0.0.1:5432, wrk and
uvicorn (``pip install uvicorn``). Usage:

    .venv/bin/python bench/servers.py [--duration 8] [--rounds 5] [--workers 2]

Run it on a quiet machine: the figures say nothing while other work shares the cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import DATABASE, ROOT, ensure_database, load, serving, sql, start_gunicorn, wrk


def start_uvicorn(
    port: int, workers: int, connections: str, *, under_gunicorn: bool = False
) -> subprocess.Popen[bytes]:
    """uvicorn itself, or gunicorn managing uvicorn's worker class, serving bench/asgi.py."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_PROCESSING": "inline",
        "BENCH_CONNECTIONS": connections,
    }
    if under_gunicorn:
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "bench.asgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=uvicorn.workers.UvicornWorker",
            "--log-level=warning",
        ]
    else:
        command = [
            str(Path(sys.executable).with_name("uvicorn")),
            "bench.asgi:application",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--workers={workers}",
            "--log-level=warning",
            "--no-access-log",
        ]
    return serving(subprocess.Popen(command, cwd=ROOT, env=env), port, " ".join(command[:2]))


NOTICE = "/topview/notice/"
# bench/urls.py's candidate: the same view from an async one, in any executor thread.
THREADED = "/threaded/notice/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    parser.add_argument("--port", type=int, default=8851)
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
        for number, connections in enumerate(args.asgi_connections, start=1):
            port = args.port + number
            processes.append(start_uvicorn(port, args.workers, connections))
            candidates[f"uvicorn, {connections}"] = (port, NOTICE)
            if connections == "pool":
                candidates["uvicorn, pool, threads"] = (port, THREADED)
        port = args.port + len(args.asgi_connections) + 1
        processes.append(start_uvicorn(port, args.workers, "pool", under_gunicorn=True))
        candidates["gunicorn+uvicorn, pool"] = (port, NOTICE)
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
                print(f"round {round_number + 1} {name:22} {result}", flush=True)
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
    print(f"{'server':22} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs gunicorn':>11}")
    for name, rows in runs.items():
        rps = statistics.median(r["rps"] for r in rows)
        p50 = statistics.median(r["p50_ms"] for r in rows)
        p99 = statistics.median(r["p99_ms"] for r in rows)
        print(f"{name:22} {rps:7.0f} {p50:7.2f} {p99:7.2f} {rps / base:11.2f}")
    bad = sum(r["non_2xx"] for rows in runs.values() for r in rows)
    lost = [r for rows in runs.values() for r in rows if r["stored"] < r["requests"] - r["non_2xx"]]
    print(f"non-2xx answers: {bad}; runs where stored rows < answered requests: {len(lost)}")


if __name__ == "__main__":
    main()
