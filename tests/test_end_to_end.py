"""The whole loop over real HTTP on 127.0.0.1: client -> fake Topview -> callbacks -> endpoint.

The fake drops 30% of callbacks, duplicates 20% and reorders them; after reconciliation every
task has reached the receivers exactly once. On SQLite the in-memory test database is shared
between threads (Django's live server does this), so the fake's clock is held while this
thread submits and nothing writes concurrently; on PostgreSQL callbacks and polls race.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from tests.support.magic import MAGIC
from tests.support.settings import ON_POSTGRES
from topview_callbacks import polling, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, NoticeState, SubmittedTask
from topview_callbacks.testing import FakeTopview, FakeTopviewServer

UID, KEY = "e2e-uid", "e2e-key"
TASKS = 40
BIZ_TYPES = [
    "VOICE_CLONE",
    "COMMON_TASK_TEXT2IMAGE",
    "SCRAPER",
    "M2V_PREVIEW",
    "PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE",
    "COMMON_TASK_IMAGE2VIDEO",
    "VOICE_TEXT2VOICE",
    "ZERO_SHOT_AVATAR",
]


class HeldClock:
    """A monotonic clock that stands still until ``release()``, then runs on from there."""

    def __init__(self, held: bool) -> None:
        self._start = time.monotonic()
        self._offset = 0.0
        self._released = threading.Event()
        if not held:
            self.release()

    def release(self) -> None:
        self._offset = time.monotonic() - self._start
        self._released.set()

    def __call__(self) -> float:
        if not self._released.is_set():
            return self._start
        return time.monotonic() - self._offset


def receivers_done(timeout: float = 30) -> bool:
    """Whether no other connection is in a transaction any more, within ``timeout`` seconds.

    The fake may be idle while the live server's thread still runs a slow request's
    receivers (its POST may even have timed out on the fake's side); that request's
    outcome commits with them. Asserting before it does would miss that notice here and
    see it fire during the next test. (On SQLite nothing runs concurrently: the clock is
    held while this thread works.)"""
    if not ON_POSTGRES:
        return True
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
            if cursor.fetchone()[0] == 0:
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def loop_settings(server: FakeTopviewServer, live_server: Any, **extra: Any) -> dict[str, Any]:
    """TOPVIEW_CALLBACKS for the loop: this account, the fake's API, the live endpoint."""
    return {
        **extra,
        "UID": UID,
        "API_KEY": KEY,
        "API_BASE_URL": server.url,
        "NOTICE_URL": live_server.url + reverse("topview_callbacks:notice"),
        "PROCESSING": "inline",
    }


@pytest.mark.django_db(transaction=True)
def test_every_task_reaches_the_receivers_exactly_once(live_server, record_signal):
    outcomes = record_signal(signals.task_outcome)
    by_type = {biz: record_signal(signals.by_biz_type[biz]) for biz in BIZ_TYPES}
    clock = HeldClock(held=not ON_POSTGRES)
    fake = FakeTopview(
        accounts={UID: KEY},
        duration=(0.2, 1.0),
        fail_rate=0.1,
        drop=0.3,
        duplicate=0.2,
        delay=(0.0, 0.5),
        reorder=True,
        seed=20240607,
        clock=clock,
    )
    with FakeTopviewServer(fake) as server:
        settings = loop_settings(server, live_server, POLL_AFTER={"default": 0}, POLL_BACKOFF=1)
        with override_settings(TOPVIEW_CALLBACKS=settings):
            client = TopviewClient()
            started = time.monotonic()
            submitted = [
                client.submit(BIZ_TYPES[n % len(BIZ_TYPES)], prompt=f"task {n}")
                for n in range(TASKS)
            ]
            clock.release()
            if ON_POSTGRES:
                # Polls race the callbacks: poll-then-callback and callback-then-poll both happen.
                while not fake.idle():
                    polling.reconcile()
                    time.sleep(0.05)
            assert server.wait_idle(timeout=30)
            assert receivers_done()
            final = polling.reconcile()
            elapsed = time.monotonic() - started
            assert polling.reconcile().polled == 0

    expected = {(task.biz_type, task.task_id) for task in submitted}
    assert len(expected) == TASKS
    fired = Counter((call["notice"].biz_type, call["notice"].task_id) for call in outcomes.calls)
    assert fired == Counter({key: 1 for key in expected})  # every task, exactly once
    for biz, recorder in by_type.items():
        assert len(recorder.calls) == sum(1 for b, _ in expected if b == biz)

    for task in SubmittedTask.objects.all():
        assert task.status == fake.task(task.task_id, task.biz_type).outcome
    stats = fake.stats
    assert stats["callbacks"] == TASKS
    assert stats["dropped"] >= 1 and stats["duplicated"] >= 1
    assert stats["sent"] == stats["acked"] == TASKS - stats["dropped"] + stats["duplicated"]
    polled = Notice.objects.filter(source="poll").count()
    # A task whose callback was dropped can only be found by polling.
    assert polled >= stats["dropped"]
    if not ON_POSTGRES:
        # Nothing raced: exactly the tasks whose callback was dropped were found by polling.
        assert polled == stats["dropped"] == final.delivered
    assert not Notice.objects.filter(state__in=[NoticeState.PENDING, NoticeState.FAILED]).exists()
    # Callbacks left in another order than their tasks finished in.
    finish_order = [
        fake.task(d.payload["taskId"], d.payload["bizType"]).finish_at for d, *_ in fake.sent
    ]
    assert finish_order != sorted(finish_order)
    print(
        f"\n{TASKS} tasks, {stats['dropped']} callbacks dropped, {stats['duplicated']} duplicated, "
        f"{polled} outcomes by polling, {elapsed:.2f} s"
    )


@pytest.mark.django_db(transaction=True)
def test_the_demo_loop_archives_the_fake_topviews_files(
    live_server, archive_settings, admin_client, tmp_path
):
    """``make demo``'s steps: inline processing, the fake's generated files, then
    ``topview_archive_media`` (the demo's cron), which asks the fake about each task first
    (``ARCHIVE_CONFIRM_URLS``, as in the demo); the admin's task page links the copies."""
    fake = FakeTopview(accounts={UID: KEY})
    with FakeTopviewServer(fake) as server:
        configured = {**archive_settings.TOPVIEW_CALLBACKS, "ARCHIVE_CONFIRM_URLS": True}
        settings = loop_settings(server, live_server, **configured)
        with override_settings(TOPVIEW_CALLBACKS=settings):
            client = TopviewClient()
            submitted = [
                client.submit(biz, prompt="demo")
                for biz in ("PRODUCT_AVATAR_IMAGE2VIDEO", "COMMON_TASK_TEXT2IMAGE", "VOICE_CLONE")
            ]
            for task in submitted:
                fake.finish(task.task_id)
            assert server.wait_idle(timeout=30)
            assert receivers_done()
            assert not ArchivedMedia.objects.exclude(state=MediaState.PENDING).exists()
            call_command("topview_archive_media", stdout=StringIO())

    media = list(ArchivedMedia.objects.order_by("task_id", "kind", "index"))
    assert [(m.kind, m.state) for m in media] == [
        ("image", "archived"),
        ("video", "archived"),
        ("video", "archived"),
        ("image", "archived"),
        ("audio", "archived"),
    ]
    for item in media:
        assert item.confirmed_at is not None
        path = Path(item.file.path)
        assert path.is_relative_to(tmp_path / "media") and path.stat().st_size == item.size
        assert path.read_bytes().startswith(MAGIC[item.content_type])
        assert item.source_url.startswith(f"{server.url}/media/")
    page = admin_client.get(
        reverse("admin:topview_callbacks_submittedtask_change", args=[media[0].task_id])
    ).content.decode()
    assert media[0].file.url in page and "archived copy" in page
