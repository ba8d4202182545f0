"""Instructions per request in the PostgreSQL backend, ours beside the bare view: a count.

bench/instructions.py counts the web process; this counts the other half of a request,
the backend that serves it. A scratch PostgreSQL cluster (initdb in a temporary folder)
runs under valgrind's callgrind, which follows each backend it forks and writes its count
when it exits. As in bench/instructions.py, each endpoint runs twice on a connection of
its own (the warm-up requests alone, then with ``--requests`` more), and the difference
divided by the requests is what one request costs the backend: parsing, planning and
running the statements, the commit, the protocol. Two runs agree within about 1%. Usage:

    .venv/bin/python bench/pg_instructions.py [--workload new|dup] [--requests 300]
        [--port 5499]

Needs valgrind and PostgreSQL's server binaries (Debian's packages; ``pg_config`` finds
them), and, run as root, the ``postgres`` user to run the cluster. Takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WARM = 100
DATABASE = "topview_pg_instructions"


def child(path: str, workload: str, requests: int) -> None:
    """One connection: the warm-up requests, then ``requests`` more; prints its backend."""
    from bench.instructions import child as run_requests

    print(run_requests(path, workload, requests, warm=WARM))


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user when run as root (PostgreSQL refuses root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def cluster_under_callgrind(port: int) -> Iterator[Path]:
    """A scratch cluster on ``port`` whose backends run under callgrind; yields the folder
    the counts are written to (``cg.<pid>``)."""
    bindir = Path(
        subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    # pg_config may be the client's; the server's binaries sit beside initdb.
    if not (bindir / "initdb").exists():
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise SystemExit("PostgreSQL's server binaries (initdb) not found")
        bindir = found[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="topview-pg-instructions-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        _as_postgres(
            [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=yes",
                f"--callgrind-out-file={folder}/cg.%p",
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(folder),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "autovacuum=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            ready = subprocess.run(
                ["pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the scratch PostgreSQL under callgrind did not start")
        yield folder
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def counted(folder: Path, path: str, workload: str, requests: int) -> int:
    """Instructions the backend of one child run executed, from its first to its exit."""
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            path,
            "--workload",
            workload,
            "--requests",
            str(requests),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = done.stdout.strip().splitlines()[-1]
    output = folder / f"cg.{pid}"
    for _ in range(120):  # the backend writes its count as it exits
        text = output.read_text() if output.exists() else ""
        found = re.search(r"^(?:totals|summary): (\d+)", text, re.MULTILINE)
        if found:
            return int(found[1])
        time.sleep(0.5)
    raise SystemExit(f"no count from the backend {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("new", "dup"), default="new")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=5499)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_PROCESSING"] = "inline"
    if args.child:
        child(args.child, args.workload, args.requests)
        return
    for tool in ("valgrind", "pg_config", "pg_isready"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (Debian: valgrind, postgresql)")
    os.environ.update(PGPORT=str(args.port), BENCH_DATABASE=DATABASE)

    from bench.instructions import report
    from bench.run import ensure_database

    with cluster_under_callgrind(args.port) as folder:
        ensure_database(DATABASE)
        per_request = {}
        for path in ("/topview/notice/", "/bare/signals/"):
            warm = counted(folder, path, args.workload, 0)
            more = counted(folder, path, args.workload, args.requests)
            per_request[path] = (more - warm) / args.requests
    ours, bare = per_request["/topview/notice/"], per_request["/bare/signals/"]
    report(
        f"inline, {args.workload} notices: instructions per request in the PostgreSQL "
        f"backend ({args.requests} requests after {WARM} to warm up)",
        ours,
        bare,
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    main()
