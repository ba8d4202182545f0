"""Where a request's time goes: py-spy samples of the gunicorn workers while wrk drives them.

Serves one configuration of bench.settings as bench/run.py does (gunicorn sync, PostgreSQL,
DEBUG off), drives one endpoint with wrk and samples both workers with py-spy, waits
included (wall time). Samples taken while a worker waits for its next request are left out;
the rest are the request's time, split by stage and by function. Needs wrk and py-spy
(`pip install py-spy`; ptrace allowed, as for root). Usage:

    .venv/bin/python bench/profile.py --endpoint inline [--candidate statements|prepared]
        [--workload new|known|dup] [--duration 10]

Endpoints: "manual" and "inline" are ours (PROCESSING), "bare" and "bare-signals" the
baselines of bench/run.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import ensure_database, load, start_gunicorn, submit_tasks, wrk  # noqa: E402

ENDPOINTS = {
    "manual": ("manual", "/topview/notice/"),
    "inline": ("inline", "/topview/notice/"),
    "bare": ("manual", "/bare/notice/"),
    "bare-signals": ("inline", "/bare/signals/"),
}
# (stage, pattern a frame "Class.function (file:line)" must match); a sample counts for
# every stage one of its frames matches, so stages nest. Shares are of the request's time.
STAGES = [
    ("the view (ours or the bare one)", r"^(NoticeView\.post|bare_\w+_view) \("),
    ("  parsing and validating the body", r"^parse_notice \("),
    ("  storing (inline: and recording the outcome)", r"^(receive|store) \(.*recording\.py"),
    ("    the statements (or the function)", r"^fetchone \(.*processing/sql\.py"),
    # The example project's receivers (Django's own request signals are not counted).
    ("  the receivers of the outcome signals", r"example_project/receivers\.py"),
    ("waiting on PostgreSQL (psycopg)", r"^Connection\.wait \(.*psycopg/"),
]
IN_REQUEST = re.compile(r"handle_request \(.*gunicorn")


def record(pid: int, seconds: int, output: Path) -> None:
    subprocess.run(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--idle",
            "--rate",
            "250",
            "--duration",
            str(seconds),
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        check=True,
        capture_output=True,
    )


def read_samples(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw format: one line per stack, frames outermost first, ';'-separated."""
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if not frame.startswith("process ")]
        samples.append((frames, int(count)))
    return samples


def short(frame: str) -> str:
    """'name (path/to/site-packages/pkg/mod.py:12)' -> 'name (pkg/mod.py)'."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    path = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path).replace(str(ROOT) + "/", "")
    return f"{name} ({path})"


def report(samples: list[tuple[list[str], int]], top: int) -> None:
    in_request = [
        (frames, count) for frames, count in samples if any(map(IN_REQUEST.search, frames))
    ]
    total = sum(count for _, count in in_request)
    idle = sum(count for _, count in samples) - total
    print(f"samples in requests: {total} (between requests, left out: {idle})")
    if not total:
        return
    for stage, pattern in STAGES:
        matcher = re.compile(pattern)
        hits = sum(count for frames, count in in_request if any(map(matcher.search, frames)))
        print(f"  {hits / total:6.1%}  {stage}")
        if stage.startswith("the view"):
            print(f"  {1 - hits / total:6.1%}  around the view (gunicorn, Django, middleware)")
    leaves: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    for frames, count in in_request:
        leaves[short(frames[-1])] += count
        for frame in {short(f) for f in frames if "topview_callbacks/" in f}:
            ours[frame] += count
    print(f"\nfunctions holding the most request time at the top of the stack (top {top}):")
    for frame, count in leaves.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")
    print(f"\nour functions by time under them, callees included (top {top}):")
    for frame, count in ours.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", choices=tuple(ENDPOINTS), default="inline")
    parser.add_argument("--workload", choices=("new", "known", "dup"), default="new")
    parser.add_argument(
        "--candidate",
        choices=("function", "statements", "prepared"),
        default="function",
        help="how the inline path reaches PostgreSQL (bench/settings.py)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds sampled")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8851)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    ensure_database("topview_bench")
    processing, path = ENDPOINTS[args.endpoint]
    server = start_gunicorn(args.port, processing, 2, candidate=args.candidate)
    url = f"http://127.0.0.1:{args.port}{path}"
    prefix = f"profile-{int(time.time())}"
    try:
        wrk(url, "new", f"{prefix}-warm", 2, args.connections)
        if args.workload == "known":
            submit_tasks(prefix, per_thread=1500 * (args.duration + 2))
        mode = "dup" if args.workload == "dup" else "new"
        with tempfile.TemporaryDirectory() as folder:
            output = Path(folder) / "samples.txt"
            sampler = threading.Thread(target=record, args=(server.pid, args.duration, output))
            print(f"load before: {load()}")
            sampler.start()
            result = wrk(url, mode, prefix, args.duration + 2, args.connections)
            sampler.join()
            print(f"load after: {load()}")
            print(f"wrk while sampled: {result['rps']:.0f} req/s, p50 {result['p50_ms']} ms")
            report(read_samples(output), args.top)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    main()
