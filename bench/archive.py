"""Archiving benchmark: one big file against curl, then many small files through Celery.

big:    a 500 MB file from a local HTTP server (a separate process on 127.0.0.1) is fetched
        by ``curl -o`` and archived by ``archiving.archive_one`` (a fresh process each time:
        download, sha256, write to a FileSystemStorage, rename), alternately, --rounds times.
        Reported: seconds and MB/s of each, the ratio, how much of ``archive_one`` was the
        download itself (``download_to_storage``; the rest: claim, rename, row update), and
        the archiving process's peak RSS growth (VmHWM after minus VmRSS before).
celery: --files files of 1 MB archived by a Celery worker (prefork, --concurrency) on Redis
        db 12 with its own queue, PostgreSQL database topview_bench_archive. Reported: files
        per second (first message queued to last file archived) and the share of the
        worker's time spent outside the download itself (Σ download time vs Σ task time,
        measured inside the worker).

Usage: .venv/bin/python bench/archive.py [big|celery|both] [--size-mb 500] [--files 1000]
Big files are written under /tmp and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOPVIEW_TEST_BROKER", "redis://127.0.0.1:6379/12")
os.environ.setdefault("TOPVIEW_TEST_RECORD", "redis://127.0.0.1:6379/12")
os.environ.setdefault("TOPVIEW_TEST_PREFIX", "topview-bench-archive")

from tests.support.processes import (  # noqa: E402
    Service,
    celery_worker,
    process_env,
    wait_for,
)
from tests.support.recording import QUEUE, records  # noqa: E402
from tests.support.worker import app  # noqa: E402

DATABASE = "topview_bench_archive"
ARCHIVE = {
    "ARCHIVE_MEDIA": True,
    "ARCHIVE_ALLOW_INSECURE": True,
    "ARCHIVE_HOSTS": ["127.0.0.1"],
    "ARCHIVE_MAX_BYTES": 2 * 1024**3,
    # The local server's URLs are the truth here: no query to Topview to confirm them.
    "ARCHIVE_CONFIRM_URLS": False,
}
SERVER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.support.media_server import MediaServer
server = MediaServer(size=int(sys.argv[3]))
server.big_file = Path(sys.argv[2])
server.start()
print(server.url, flush=True)
time.sleep(1e9)
"""
ARCHIVER = """
import json, os, sys, time, django
from django.conf import settings
settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, **json.loads(os.environ["ARCHIVE"])}
settings.DATABASES["default"]["NAME"] = os.environ["DB"]
settings.MEDIA_ROOT = os.environ["MEDIA"]
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from topview_callbacks import archiving
from topview_callbacks.models import ArchivedMedia, SubmittedTask

download = archiving.download_to_storage
timed = {}

def timed_download(*args, **kwargs):
    started = time.perf_counter()
    try:
        return download(*args, **kwargs)
    finally:
        timed["download"] = time.perf_counter() - started

archiving.download_to_storage = timed_download

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

task = SubmittedTask.objects.create(biz_type="COMMON_TASK_TEXT2VIDEO", task_id=str(time.time_ns()),
    status="success", result={"videos": [{"filePath": os.environ["URL"]}]})
archiving.create_rows(task)
media = ArchivedMedia.objects.get(task=task)
before = status("VmRSS")
started = time.perf_counter()
done = archiving.archive_one(media.pk)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "download": timed["download"],
                  "state": done.state, "size": done.size,
                  "rss_growth": status("VmHWM") - before, "name": done.file.path}))
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def big(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="topview-bench-big-", dir="/tmp"))
    source = scratch / "big.mp4"
    with source.open("wb") as handle:
        for _ in range(args.size_mb):
            handle.write(os.urandom(1024 * 1024))
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT), str(source), "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"{server.stdout.readline().strip()}/file/big.mp4"  # type: ignore[union-attr]
        curl, ours, downloads, growth = [], [], [], []
        for n in range(args.rounds):
            target = scratch / f"curl-{n}.mp4"
            started = time.perf_counter()
            subprocess.run(["curl", "-sS", "-o", str(target), url], check=True)
            curl.append(time.perf_counter() - started)
            target.unlink()
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "PYTHONPATH": str(ROOT),
                "ARCHIVE": json.dumps(ARCHIVE),
                "DB": str(scratch / "db.sqlite3"),
                "MEDIA": str(scratch / "media"),
                "URL": url,
            }
            out = subprocess.run(
                [sys.executable, "-c", ARCHIVER], env=env, capture_output=True, text=True
            )
            if out.returncode:
                raise SystemExit(out.stderr)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            assert result["state"] == "archived" and result["size"] == args.size_mb * 1024**2
            Path(result["name"]).unlink()
            ours.append(result["seconds"])
            downloads.append(result["download"])
            growth.append(result["rss_growth"])
    finally:
        server.terminate()
        server.wait()
        for path in sorted(scratch.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        scratch.rmdir()
    mb = args.size_mb * 1.048576
    return {
        "size_mb": args.size_mb,
        "curl_seconds": [round(s, 3) for s in curl],
        "archive_seconds": [round(s, 3) for s in ours],
        "of_which_download_seconds": [round(s, 3) for s in downloads],
        "curl_mb_s_median": round(mb / statistics.median(curl), 1),
        "archive_mb_s_median": round(mb / statistics.median(ours), 1),
        "ratio_median": round(statistics.median(curl) / statistics.median(ours), 3),
        "peak_rss_growth_mb": [round(g / 1024**2, 1) for g in growth],
    }


# --- the Celery part: this module is also the worker's Celery app (BENCH_ROLE=worker) ----

if os.environ.get("BENCH_ROLE") == "worker":
    from topview_callbacks import archiving, downloads

    def _timed(function: Any, counter: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                records().incrbyfloat(f"bench-archive:{counter}", time.perf_counter() - started)

        return run

    # Patched where archive_one looks it up (archiving imported it from downloads).
    archiving.download_to_storage = _timed(downloads.download_to_storage, "download")  # type: ignore[attr-defined]
    archiving.archive_one = _timed(archiving.archive_one, "task")


def ensure_database() -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    env = process_env(DATABASE)
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"], cwd=ROOT, env=env, check=True
    )


def celery(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    ensure_database()
    media_root = tempfile.mkdtemp(prefix="topview-bench-media-", dir="/tmp")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT), "/dev/null", str(1024 * 1024)],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker: Service | None = None
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        db = psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DATABASE}", autocommit=True)
        db.execute(
            "TRUNCATE topview_callbacks_archivedmedia, topview_callbacks_submittedtask CASCADE"
        )
        db.execute(
            "INSERT INTO topview_callbacks_submittedtask (account, biz_type, task_id, "
            "notice_uuid, status, previous_status, request_payload, error_message, "
            "submitted_at, poll_count, updated_at) "
            "SELECT 'default', 'COMMON_TASK_TEXT2VIDEO', 'b' || n, '', 'success', 'running', "
            f"'{{}}', '', now(), 0, now() FROM generate_series(1, {args.files}) n"
        )
        db.execute(
            "INSERT INTO topview_callbacks_archivedmedia (task_id, kind, index, source_url, "
            "file, sha256, content_type, state, attempts, last_error, created_at, claim, "
            f"partial_name) SELECT id, 'video', 0, '{url}/ok/' || task_id || '.mp4', '', '', "
            "'', 'pending', 0, '', now(), '', '' FROM topview_callbacks_submittedtask"
        )
        ids = [row[0] for row in db.execute("SELECT id FROM topview_callbacks_archivedmedia")]
        records().delete("bench-archive:download", "bench-archive:task")
        worker = celery_worker(
            DATABASE,
            concurrency=args.concurrency,
            overrides=ARCHIVE,
            loglevel="warning",
            include=("bench.archive",),  # times the download and the whole task, into Redis
            TOPVIEW_TEST_MEDIA_ROOT=media_root,
            BENCH_ROLE="worker",
        )
        started = time.perf_counter()
        for media_id in ids:
            app.send_task("topview_callbacks.archive_media", (media_id,), queue=QUEUE)

        def archived() -> bool:
            query = "SELECT count(*) FROM topview_callbacks_archivedmedia WHERE state='archived'"
            return int(db.execute(query).fetchone()[0]) == len(ids)  # type: ignore[index]

        wait_for(archived, args.timeout, "every file archived", every=0.05)
        wall = time.perf_counter() - started
    finally:
        if worker is not None:
            worker.stop()
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", media_root], check=True)
    download = float(records().get("bench-archive:download") or 0)
    task = float(records().get("bench-archive:task") or 0)
    return {
        "files": len(ids),
        "file_mb": 1,
        "concurrency": args.concurrency,
        "wall_seconds": round(wall, 2),
        "files_per_second": round(len(ids) / wall, 1),
        "sum_download_seconds": round(download, 2),
        "sum_archive_one_seconds": round(task, 2),
        "outside_download_share_of_archive_one": round(1 - download / task, 3) if task else None,
        "outside_download_share_of_worker_time": round(1 - download / (wall * args.concurrency), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", nargs="?", default="both", choices=["big", "celery", "both"])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    report: dict[str, Any] = {"load_before": uptime()}
    if args.part in ("big", "both"):
        report["big"] = big(args)
    if args.part in ("celery", "both"):
        report["celery"] = celery(args)
    report["load_after"] = uptime()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
