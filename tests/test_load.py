"""A bounded load on 127.0.0.1: gunicorn (several workers) + a Celery worker on Redis + PostgreSQL.

10,000 deliveries (7,000 notices, 30% of deliveries repeat one of them, interleaved so some
arrive at the same time), 64 concurrent clients, processed by the Celery worker's drains.
Exact counts: none lost, none fired twice.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.processes import Service, celery_worker, gunicorn
from tests.support.recording import fired

# `load`: not in `make test` (it has `make test-load`); CI runs it in nox's `full` session.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.load,
    pytest.mark.usefixtures("redis_records"),
]


def _deliveries(unique: int, duplicate_ratio: float) -> list[dict[str, Any]]:
    from topview_callbacks.testing import notice_payload

    notices = [notice_payload(random.choice(("M2V_PREVIEW", "VOICE_CLONE"))) for _ in range(unique)]
    repeats = round(unique * duplicate_ratio / (1 - duplicate_ratio))
    deliveries = notices + [random.choice(notices) for _ in range(repeats)]
    random.shuffle(deliveries)
    return deliveries


def _post(port: int, body: bytes, uid: str) -> int:
    for _attempt in range(3):  # like Topview, retry a refused connection (full backlog)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(
                "POST",
                "/topview/notice/",
                body=body,
                headers={"Content-Type": "application/json", "Topview-Uid": uid},
            )
            response = conn.getresponse()
            payload = json.loads(response.read())
            if response.status == 200 and payload["result"]["result"] == "success":
                return 200
            return response.status
        except ConnectionError:
            time.sleep(0.1)
        finally:
            conn.close()
    return 0


def run_load(
    db_name: str,
    services: list[Service],
    *,
    unique: int = 7000,
    duplicate_ratio: float = 0.3,
    concurrency: int = 64,
    web_workers: int = 3,
    celery_concurrency: int = 2,
    budget: float = 170,
) -> dict[str, Any]:
    """Send the deliveries, wait until every notice is processed; returns the figures.

    Gives up ``budget`` seconds after the first request, so a slow machine fails the test
    instead of hanging it.
    """
    from topview_callbacks.conf import topview_settings
    from topview_callbacks.models import Notice, NoticeState

    celery = {"PROCESSING": "celery"}
    services.append(celery_worker(db_name, concurrency=celery_concurrency, overrides=celery))
    web, port = gunicorn(db_name, workers=web_workers, overrides=celery)
    services.append(web)
    deliveries = _deliveries(unique, duplicate_ratio)
    bodies = [json.dumps(d).encode() for d in deliveries]
    uid = topview_settings.uid

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(lambda body: _post(port, body, uid), bodies))
    received = time.monotonic()
    deadline = started + budget
    processed = 0
    while time.monotonic() < deadline:
        processed = Notice.objects.filter(state=NoticeState.PROCESSED).count()
        if processed >= unique:
            break
        time.sleep(0.25)
    done = time.monotonic()
    return {
        "deliveries": len(deliveries),
        "unique": unique,
        "uuids": {d["uuid"] for d in deliveries},
        "statuses": statuses,
        "processed": processed,
        "receive_seconds": received - started,
        "end_to_end_seconds": done - started,
        "receive_rate": len(deliveries) / (received - started),
        "end_to_end_rate": processed / (done - started),
    }


def test_bounded_load_loses_nothing_and_fires_nothing_twice(
    transactional_db: None, running: list[Service]
) -> None:
    from django.db import connection
    from django.db.models import Max

    from topview_callbacks.models import Notice, SubmittedTask

    figures = run_load(str(connection.settings_dict["NAME"]), running)
    print(
        f"\nreceive {figures['receive_rate']:.0f} deliveries/s; end-to-end (received -> "
        f"processed -> signal) {figures['end_to_end_rate']:.0f} notices/s"
    )
    assert figures["deliveries"] == 10_000
    assert figures["statuses"].count(200) == 10_000  # every delivery acknowledged
    assert figures["processed"] == 7_000, "not every notice was processed in time"
    assert Notice.objects.count() == 7_000
    assert set(Notice.objects.values_list("uuid", flat=True)) == figures["uuids"]
    assert Notice.objects.aggregate(attempts=Max("attempts")) == {"attempts": 1}
    assert SubmittedTask.objects.count() == 7_000
    assert fired() == dict.fromkeys(figures["uuids"], 1)  # each receiver ran exactly once
