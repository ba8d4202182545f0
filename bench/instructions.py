"""Instructions per request in the web process, ours beside the bare view: a count, not a time.

Rates and CPU times on a shared 2-core machine move with the neighbours' load; the number
of instructions a request executes does not. This script runs the in-process request loop
of bench/cpu.py under valgrind's callgrind, once with only the warm-up requests and once
with ``--requests`` more, for the endpoint under test and for its bare baseline; the
difference divided by the requests is what one request costs the web process (Django, the
view, psycopg's client side). PostgreSQL's side is not counted: bench/cpu.py reads it.
Two runs of the same code agree within about 1%. Usage:

    .venv/bin/python bench/instructions.py [--workload new|dup] [--requests 300]
        [--processing inline|manual]

Needs valgrind (Debian's package) and PostgreSQL as bench/cpu.py does; takes about 5
minutes (four runs under callgrind, two at a time).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM = 200


def child(path: str, workload: str, requests: int, warm: int = WARM) -> int:
    """Inside callgrind: ``warm`` requests, then ``requests`` more, on one connection;
    returns its PostgreSQL backend's pid (bench/pg_instructions.py counts that side)."""
    import django

    django.setup()
    from django.db import connection

    from bench.cpu import block, bodies
    from bench.wsgi import application

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = int(cursor.fetchone()[0])
    payloads = bodies(warm + requests, workload)
    block(application, path, payloads[:warm], pid)
    if requests:
        block(application, path, payloads[warm:], pid)
    connection.close()
    return pid


def counted(path: str, processing: str, workload: str, requests: int) -> int:
    """Instructions callgrind counted for a whole child run."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            path,
            "--processing",
            processing,
            "--workload",
            workload,
            "--requests",
            str(requests),
        ],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind reported no count:\n{done.stderr[-2000:]}")
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processing", choices=("inline", "manual"), default="inline")
    parser.add_argument("--workload", choices=("new", "dup"), default="new")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_PROCESSING"] = args.processing
    if args.child:
        child(args.child, args.workload, args.requests)
        return

    from bench.run import ensure_database

    ensure_database(os.environ.get("BENCH_DATABASE", "topview_bench"))
    ours = "/topview/notice/"
    bare = "/bare/signals/" if args.processing == "inline" else "/bare/notice/"
    runs = [(path, count) for path in (ours, bare) for count in (0, args.requests)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = list(
            pool.map(lambda run: counted(run[0], args.processing, args.workload, run[1]), runs)
        )
    per_request = {
        path: (totals[2 * index + 1] - totals[2 * index]) / args.requests
        for index, path in enumerate((ours, bare))
    }
    report(
        f"{args.processing}, {args.workload} notices: instructions per request in the web "
        f"process ({args.requests} requests after {WARM} to warm up)",
        per_request[ours],
        per_request[bare],
    )


def report(title: str, ours: float, bare: float) -> None:
    print(title)
    print(f"  ours {ours / 1e3:8.0f} k")
    print(f"  bare {bare / 1e3:8.0f} k")
    print(f"  bare/ours {bare / ours:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    main()
