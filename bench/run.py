"""Throughput and latency of the notice endpoint against a bare Django view doing the same INSERT.

Serves bench.settings (the example project on PostgreSQL, DEBUG off, persistent
connections) with gunicorn on 127.0.0.1 and drives it with wrk, interleaving the two
endpoints round by round so both see the same machine. Needs PostgreSQL on
127.0.0.1:5432 and wrk (`apt-get install wrk`). Usage:

    .venv/bin/python bench/run.py [--duration 10] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENDPOINTS = {"bare view": "/bare/notice/", "topview_callbacks": "/topview/notice/"}


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def sql(query: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=topview_bench") as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def start_gunicorn(port: int, processing: str, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_PROCESSING": processing,
    }
    server = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("gunicorn")),
            "bench.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=sync",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/topview/notice/", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def wrk(url: str, mode: str, prefix: str, duration: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_PREFIX": prefix}
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "post_notice.lua"),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",  # type: ignore[dict-item]
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def statements_per_new_notice() -> int:
    """SQL statements our endpoint runs for one new notice (in-process, same settings)."""
    code = """
import django, json, uuid
django.setup()
from django.db import connection
from django.test import Client
from topview_callbacks.testing import notice_payload
seen = []
def count(execute, sql, params, many, context):
    seen.append(sql)
    return execute(sql, params, many, context)
client = Client()
with connection.execute_wrapper(count):
    response = client.post("/topview/notice/", data=json.dumps(notice_payload()),
                           content_type="application/json", headers={"Topview-Uid": "bench-uid"})
assert response.status_code == 200, response.content
print(len(seen))
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8831)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    ensure_database("topview_bench")
    sql("TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask CASCADE")
    statements = statements_per_new_notice()
    print(f"SQL statements per new notice on the request path: {statements}")

    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    tag = str(int(time.time()))
    server = start_gunicorn(args.port, "manual", args.workers)
    try:
        for number, path in enumerate(ENDPOINTS.values()):  # warm up connections and caches
            url = f"http://127.0.0.1:{args.port}{path}"
            wrk(url, "new", f"{tag}-warm{number}", 2, args.connections)
        for round_number in range(args.rounds):
            for mode in ("new", "dup"):
                for name, path in ENDPOINTS.items():
                    prefix = f"{tag}-{round_number}-{mode}-{path.strip('/').replace('/', '_')}"
                    result = wrk(
                        f"http://127.0.0.1:{args.port}{path}",
                        mode,
                        prefix,
                        args.duration,
                        args.connections,
                    )
                    if mode == "new":
                        stored = sql(
                            "SELECT count(*) FROM topview_callbacks_notice "
                            f"WHERE uuid LIKE '{prefix}-%'"
                        )[0][0]
                        result["stored"] = stored
                    runs.setdefault((name, mode), []).append(result)
                    print(f"round {round_number + 1} {mode:3} {name:18} {result}")
    finally:
        server.terminate()
        server.wait()

    # For information: the same endpoint with PROCESSING="inline" (signals in the request).
    server = start_gunicorn(args.port, "inline", args.workers)
    try:
        inline = [
            wrk(
                f"http://127.0.0.1:{args.port}/topview/notice/",
                "new",
                f"{tag}-inline-{n}",
                args.duration,
                args.connections,
            )
            for n in range(args.rounds)
        ]
    finally:
        server.terminate()
        server.wait()

    print()
    print(
        f"gunicorn sync x{args.workers}, wrk -t2 -c{args.connections} -d{args.duration}s, "
        f"median of {args.rounds} interleaved rounds, PostgreSQL, ~1 KB notices"
    )
    print(f"{'notices':8} {'endpoint':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}")
    summary = {}
    for mode in ("new", "dup"):
        bare = statistics.median(r["rps"] for r in runs[("bare view", mode)])
        for name in ENDPOINTS:
            rows = runs[(name, mode)]
            rps = statistics.median(r["rps"] for r in rows)
            p50 = statistics.median(r["p50_ms"] for r in rows)
            p99 = statistics.median(r["p99_ms"] for r in rows)
            ratio = rps / bare
            summary[f"{mode}/{name}"] = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "ratio": ratio}
            print(f"{mode:8} {name:18} {rps:8.0f} {p50:8.2f} {p99:8.2f} {rps / bare:6.2f}")
    inline_rps = statistics.median(r["rps"] for r in inline)
    bare_new = statistics.median(r["rps"] for r in runs[("bare view", "new")])
    summary["new/topview_callbacks inline processing"] = {"rps": inline_rps}
    print(
        f"{'new':8} {'ours, inline':18} {inline_rps:8.0f} "
        f"{statistics.median(r['p50_ms'] for r in inline):8.2f} "
        f"{statistics.median(r['p99_ms'] for r in inline):8.2f} {inline_rps / bare_new:6.2f}"
        "   (PROCESSING=inline: the signals run in the request)"
    )
    bad = sum(r["non_2xx"] for rows in runs.values() for r in rows)
    lost = [
        (key, r["requests"], r["stored"])
        for key, rows in runs.items()
        for r in rows
        if "stored" in r and r["stored"] < r["requests"] - r["non_2xx"]
    ]
    print(f"non-2xx answers: {bad}; runs where stored rows < answered requests: {lost or 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"statements": statements, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
