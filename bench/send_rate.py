"""The queue of submissions drained against the fake Topview, next to the fake's capacity.

--count submissions (default 10,000) are enqueued in one transaction (timed: the INSERTs
and the commit), then drained with ``PROCESSING="inline"``: the commit sends the first
``MAX_UNFINISHED`` (--limit, 10), and each outcome's callback, delivered by the fake over
HTTP to this process's endpoint (a threaded WSGI server on 127.0.0.1), starts the sender
again. The fake (``FakeTopviewServer``) answers 4007 past --limit unfinished tasks and runs
each task for a random --task-seconds (0.5 to 1 s). Reported: submissions per second from
the commit to the last outcome, against the fake's capacity (limit / mean task time), the
count of 4007 answers, and the enqueue time.

Needs PostgreSQL on 127.0.0.1:5432 (database topview_bench_send, created and migrated).
Usage: .venv/bin/python bench/send_rate.py [--count 10000] [--limit 10]
       [--task-seconds 0.5 1.0]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("BENCH_DATABASE", "topview_bench_send")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="submissions to enqueue")
    parser.add_argument("--limit", type=int, default=10, help="MAX_UNFINISHED and the fake's")
    parser.add_argument(
        "--task-seconds", type=float, nargs=2, default=(0.5, 1.0), help="a task's run time"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.db import connection, transaction
    from django.test.utils import override_settings

    from topview_callbacks.client import Submission, TopviewClient
    from topview_callbacks.models import Notice, SubmittedTask, TaskStatus
    from topview_callbacks.testing.fake.api import FakeTopview
    from topview_callbacks.testing.fake.server import FakeTopviewServer

    _ensure_database(os.environ["BENCH_DATABASE"])
    call_command("migrate", verbosity=0)
    SubmittedTask.objects.all().delete()
    Notice.objects.all().delete()

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=False)
    site.set_app(WSGIHandler())
    threading.Thread(target=site.serve_forever, daemon=True).start()
    notice_url = f"http://127.0.0.1:{site.server_address[1]}/topview/notice/"

    fake = FakeTopview(duration=tuple(args.task_seconds), max_unfinished=args.limit)
    with FakeTopviewServer(fake, serve_media=False) as server:
        settings = {
            "UID": "bench-uid",
            "API_KEY": "bench-key",
            "API_BASE_URL": server.url,
            "NOTICE_URL": notice_url,
            "PROCESSING": "inline",
            "MAX_UNFINISHED": args.limit,
        }
        with override_settings(TOPVIEW_CALLBACKS=settings):
            submissions = [Submission({"prompt": f"bench {i}"}) for i in range(args.count)]
            began = time.monotonic()
            with transaction.atomic():
                TopviewClient().enqueue_many("COMMON_TASK_TEXT2IMAGE", submissions)
                enqueued = time.monotonic()
            # The commit sent the first ones; the callbacks do the rest.
            committed = time.monotonic()
            done = SubmittedTask.objects.filter(status__in=(TaskStatus.SUCCESS, TaskStatus.FAIL))
            while done.count() < args.count:
                time.sleep(0.5)
                print(f"\r{done.count()} / {args.count}", end="", flush=True)
            drained = time.monotonic()
    site.shutdown()
    connection.close()

    low, high = args.task_seconds
    capacity = args.limit / ((low + high) / 2)
    rate = args.count / (drained - committed)
    print()
    print(
        f"enqueue {args.count} in one transaction: {enqueued - began:.2f} s (INSERTs), "
        f"{committed - began:.2f} s with the commit and the first sends"
    )
    print(
        f"drained in {drained - committed:.1f} s: {rate:.2f} submissions/s; the fake's "
        f"capacity {capacity:.2f}/s (limit {args.limit} / mean task {(low + high) / 2:.2f} s): "
        f"{rate / capacity:.0%}"
    )
    print(f"4007 answers: {fake.busy_answers}; most unfinished at once: {fake.most_unfinished}")


def _ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            db.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
