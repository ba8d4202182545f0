"""Throughput and latency of the notice endpoint against a bare Django view doing the same INSERT.

Serves bench.settings (the example project on PostgreSQL, DEBUG off, persistent
connections) with gunicorn on 127.0.0.1 and drives it with wrk, interleaving the two
endpoints round by round so both see the same machine. Needs PostgreSQL on
127.0.0.1:5432 and wrk (`apt-get install wrk`). Usage:

    .venv/bin/python bench/run.py [--duration 8] [--rounds 5] [--workloads new known dup]

Compared, each pair in the same round: the receive path (PROCESSING="manual") against a
bare view doing the same one INSERT; inline processing (the notice stored, its outcome
recorded on its task, the signals fired, in one transaction) against a bare view doing
that INSERT in an atomic block and sending the same signals to the same receivers. All
with the defaults a new user gets; ``--candidates`` adds the inline path's alternatives of
bench/settings.py (its statements one by one, and prepared by psycopg). Workloads: new
notices, each the outcome of a task of its own ("new": the task is created from the
notice; "known": submitted through the client first), and one uuid delivered again ("dup").
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# bench.settings' database; BENCH_DATABASE names another (a server shared with other runs).
DATABASE = os.environ.get("BENCH_DATABASE", "topview_bench")  # on PGPORT, else 5432


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def sql(query: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DATABASE}") as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def start_gunicorn(
    port: int, processing: str, workers: int, *, candidate: str = "function", threads: int = 1
) -> subprocess.Popen[bytes]:
    """gunicorn's sync workers, or its gthread workers with ``threads`` threads each."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_PROCESSING": processing,
        "BENCH_CANDIDATE": candidate,
    }
    server = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("gunicorn")),
            "bench.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--worker-class=sync" if threads == 1 else "--worker-class=gthread",
            f"--threads={threads}",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
    )
    return serving(server, port, "gunicorn")


def serving(server: subprocess.Popen[bytes], port: int, name: str) -> subprocess.Popen[bytes]:
    """``server`` once it answers on ``port`` (stopped, and the script with it, if never)."""
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/topview/notice/", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"{name} did not start")


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


def statement_counts(processing: str) -> dict[str, int]:
    """SQL statements our endpoint runs per delivery, request path and inline processing
    included: a new notice of a new task, of a task submitted through the client, and a
    repeated uuid (in-process, same settings, CaptureQueriesContext)."""
    code = """
import django, json, sys
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from topview_callbacks.models import SubmittedTask
from topview_callbacks.testing import notice_payload
client = Client()
def count(payload):
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/topview/notice/", data=json.dumps(payload),
                               content_type="application/json",
                               headers={"Topview-Uid": "bench-uid"})
    assert response.status_code == 200, response.content
    return len(queries.captured_queries)
new = notice_payload()
known = notice_payload()
SubmittedTask.objects.create(biz_type=known["bizType"], task_id=known["taskId"],
                             notice_uuid=known["uuid"])
print(json.dumps({"new": count(new), "dup": count(new), "known": count(known)}))
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_PROCESSING": processing}
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def submit_tasks(prefix: str, per_thread: int) -> None:
    """SubmittedTask rows for the task ids wrk will send (post_notice.lua), as the client
    would have created them."""
    sql(
        "INSERT INTO topview_callbacks_submittedtask (account, biz_type, task_id, notice_uuid, "
        "status, previous_status, request_payload, error_message, submitted_at, poll_count, "
        "updated_at) "
        f"SELECT 'default', 'M2V_PREVIEW', '{prefix}-' || t || '-' || n, "
        f"'{prefix}-' || t || '-' || n, 'submitted', '', '{{}}', '', now(), 0, now() "
        f"FROM generate_series(1, 2) t, generate_series(1, {per_thread}) n"
    )


# (endpoint label, server, path); servers: PROCESSING of the gunicorn serving it.
ENDPOINTS = {
    "bare INSERT": ("manual", "/bare/notice/"),
    "ours, manual": ("manual", "/topview/notice/"),
    "bare INSERT+signals": ("inline", "/bare/signals/"),
    "ours, inline": ("inline", "/topview/notice/"),
    "inline: statements": ("inline-statements", "/topview/notice/"),
    "inline: prepared": ("inline-prepared", "/topview/notice/"),
}
# Each server's PROCESSING and how the inline path reaches PostgreSQL (bench/settings.py).
SERVERS = {
    "manual": ("manual", "function"),
    "inline": ("inline", "function"),
    "inline-statements": ("inline", "statements"),
    "inline-prepared": ("inline", "prepared"),
}
# Per workload, the pairs compared: (baseline, ours).
PAIRS = {
    "new": [("bare INSERT", "ours, manual"), ("bare INSERT+signals", "ours, inline")],
    "known": [("bare INSERT+signals", "ours, inline")],
    "dup": [("bare INSERT", "ours, manual"), ("bare INSERT+signals", "ours, inline")],
}
CANDIDATES = [
    ("bare INSERT+signals", "inline: statements"),
    ("bare INSERT+signals", "inline: prepared"),
]


def pairs_of(workload: str, candidates: bool) -> list[tuple[str, str]]:
    return PAIRS[workload] + (CANDIDATES if candidates and workload == "new" else [])


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8831)
    parser.add_argument("--workloads", nargs="+", choices=tuple(PAIRS), default=list(PAIRS))
    parser.add_argument(
        "--candidates",
        action="store_true",
        help="also the inline path's alternatives (statements one by one, prepared)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    ensure_database(DATABASE)
    sql("TRUNCATE topview_callbacks_notice, topview_callbacks_submittedtask CASCADE")
    counts = {mode: statement_counts(mode) for mode in ("manual", "inline")}
    print(f"SQL statements per delivery, request path and inline processing: {counts}")
    print(f"load before: {load()}")

    servers: dict[str, subprocess.Popen[bytes]] = {}
    ports = {name: args.port + number for number, name in enumerate(SERVERS)}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    tag = str(int(time.time()))
    try:
        for name, port in ports.items():
            if name.startswith("inline-") and not args.candidates:
                continue
            processing, candidate = SERVERS[name]
            servers[name] = start_gunicorn(port, processing, args.workers, candidate=candidate)
        for number, (server, path) in enumerate(ENDPOINTS.values()):  # warm up
            if server not in servers:
                continue
            url = f"http://127.0.0.1:{ports[server]}{path}"
            wrk(url, "new", f"{tag}-warm{number}", 2, args.connections)
        for round_number in range(args.rounds):
            for workload in args.workloads:
                pairs = pairs_of(workload, args.candidates)
                names = list(dict.fromkeys(name for pair in pairs for name in pair))
                if round_number % 2:  # alternate who goes first
                    names.reverse()
                for name in names:
                    server, path = ENDPOINTS[name]
                    prefix = f"{tag}-{round_number}-{workload}-{name.replace(' ', '')}"
                    if workload == "known":
                        submit_tasks(prefix, per_thread=1500 * args.duration)
                    mode = "dup" if workload == "dup" else "new"
                    url = f"http://127.0.0.1:{ports[server]}{path}"
                    result = wrk(url, mode, prefix, args.duration, args.connections)
                    if mode == "new":
                        result["stored"] = sql(
                            "SELECT count(*) FROM topview_callbacks_notice "
                            f"WHERE uuid LIKE '{prefix}-%'"
                        )[0][0]
                    runs.setdefault((workload, name), []).append(result)
                    print(f"round {round_number + 1} {workload:5} {name:24} {result}", flush=True)
    finally:
        for server_process in servers.values():
            server_process.terminate()
            server_process.wait()
    print(f"load after: {load()}")

    print()
    print(
        f"gunicorn sync x{args.workers} per server, wrk -t2 -c{args.connections} "
        f"-d{args.duration}s, medians of {args.rounds} interleaved rounds, PostgreSQL, ~1 KB"
    )
    print(
        f"{'workload':8} {'endpoint':24} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'vs':20} {'ratio':>5}  ratio per round"
    )
    summary: dict[str, Any] = {"statements": counts}
    for workload in args.workloads:
        for baseline, ours in pairs_of(workload, args.candidates):
            base_rows, our_rows = runs[(workload, baseline)], runs[(workload, ours)]
            ratios = [o["rps"] / b["rps"] for o, b in zip(our_rows, base_rows, strict=True)]
            rps = statistics.median(r["rps"] for r in our_rows)
            ratio = statistics.median(ratios)
            p50 = statistics.median(r["p50_ms"] for r in our_rows)
            p99 = statistics.median(r["p99_ms"] for r in our_rows)
            base_rps = statistics.median(r["rps"] for r in base_rows)
            rounds = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"{workload:8} {baseline:24} {base_rps:7.0f}")
            print(
                f"{workload:8} {ours:24} {rps:7.0f} {p50:7.2f} {p99:7.2f} "
                f"{baseline:20} {ratio:5.2f}  ({rounds})"
            )
            summary[f"{workload}/{ours} vs {baseline}"] = {
                "rps": rps,
                "baseline_rps": base_rps,
                "ratio": ratio,
                "ratios": ratios,
                "p50_ms": p50,
                "p99_ms": p99,
            }
    bad = sum(r["non_2xx"] for rows in runs.values() for r in rows)
    lost = [
        (key, r["requests"], r["stored"])
        for key, rows in runs.items()
        for r in rows
        if "stored" in r and r["stored"] < r["requests"] - r["non_2xx"]
    ]
    print(f"non-2xx answers: {bad}; runs where stored rows < answered requests: {lost or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
