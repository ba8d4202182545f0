"""CPU per request, ours beside the bare view, in one process: Python's and PostgreSQL's.

Wall-clock rates on a shared 2-core machine move with the neighbours' load; CPU time moves
much less. This script sends notices through Django's WSGI handler in-process (no network,
no gunicorn), alternating blocks of the endpoint under test and its bare baseline
(bench/urls.py), and reads two clocks for each block: this process's CPU time (the Python
of the request: Django, the view, psycopg) and the CPU time of the PostgreSQL backend that
serves this process's connection (``/proc/<pid>/stat``: parsing, planning, executing,
writing WAL; the commit's fsync wait is not CPU and is not counted). Both are printed per
request, with the difference and the ratio. Usage:

    .venv/bin/python bench/cpu.py [--processing inline|manual] [--requests 2000]
        [--rounds 5] [--workload new|dup] [--candidate function|statements|prepared]

The bare baseline is ``/bare/signals/`` for inline (the INSERT and the outcome signals in a
transaction) and ``/bare/notice/`` for manual (the INSERT alone). Needs PostgreSQL on
127.0.0.1:5432 (database ``topview_bench``, created and migrated as bench/run.py does) and
must run on the same machine (it reads the backend's /proc entry).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the PostgreSQL backend ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def environ(path: str, body: bytes) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_TOPVIEW_UID": "bench-uid",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }


def bodies(count: int, workload: str) -> list[bytes]:
    from topview_callbacks.testing import notice_payload

    if workload == "dup":
        one = json.dumps(notice_payload("M2V_PREVIEW")).encode()
        return [one] * count
    return [
        json.dumps(notice_payload("M2V_PREVIEW", uuid=uuid.uuid4().hex)).encode()
        for _ in range(count)
    ]


def block(application: Any, path: str, payloads: list[bytes], pid: int) -> tuple[float, float]:
    """(Python CPU, PostgreSQL CPU) per request, in microseconds, over ``payloads``."""

    def respond(status: str, headers: list[tuple[str, str]]) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"{path} answered {status}")

    python, server = time.process_time(), backend_cpu(pid)
    for body in payloads:
        for _chunk in application(environ(path, body), respond):
            pass
    python, server = time.process_time() - python, backend_cpu(pid) - server
    return python / len(payloads) * 1e6, server / len(payloads) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processing", choices=("inline", "manual"), default="inline")
    parser.add_argument("--workload", choices=("new", "dup"), default="new")
    parser.add_argument("--candidate", choices=("function", "statements", "prepared"))
    parser.add_argument("--requests", type=int, default=2000, help="per block")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["BENCH_PROCESSING"] = args.processing
    if args.candidate:
        os.environ["BENCH_CANDIDATE"] = args.candidate

    from bench.run import ensure_database, load

    ensure_database(os.environ.get("BENCH_DATABASE", "topview_bench"))
    from django.db import connection

    from bench.wsgi import application

    ours = "/topview/notice/"
    bare = "/bare/signals/" if args.processing == "inline" else "/bare/notice/"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
    for path in (ours, bare):  # warm: plans, caches, the first dup row
        block(application, path, bodies(200, args.workload), pid)
    print(f"load before: {load()}")
    print(
        f"{args.processing}, {args.workload} notices, candidate "
        f"{args.candidate or 'function'}: {args.requests} requests a block, {args.rounds} rounds"
    )
    results: dict[str, list[tuple[float, float]]] = {ours: [], bare: []}
    for number in range(1, args.rounds + 1):
        for path in (ours, bare) if number % 2 else (bare, ours):
            payloads = bodies(args.requests, args.workload)
            results[path].append(block(application, path, payloads, pid))
        (op, os_), (bp, bs) = results[ours][-1], results[bare][-1]
        print(
            f"  round {number}: ours {op:5.0f} + {os_:4.0f} µs, bare {bp:5.0f} + {bs:4.0f} µs "
            "(Python + PostgreSQL)"
        )
    print(f"load after: {load()}")
    python = {path: statistics.median(r[0] for r in runs) for path, runs in results.items()}
    server = {path: statistics.median(r[1] for r in runs) for path, runs in results.items()}
    total = {path: python[path] + server[path] for path in results}
    print("medians per request:")
    for name, figures in (("Python", python), ("PostgreSQL", server), ("both", total)):
        extra, ratio = figures[ours] - figures[bare], figures[bare] / figures[ours]
        print(
            f"  {name:>10}: ours {figures[ours]:5.0f} µs, bare {figures[bare]:5.0f} µs, "
            f"+{extra:4.0f} µs, bare/ours {ratio:.2f}"
        )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    main()
