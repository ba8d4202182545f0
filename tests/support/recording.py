"""What receivers in other processes did, recorded in Redis (their signals are invisible
to the test; Redis counters are not).

Isolation from other users of the machine's Redis: database 14 (``TOPVIEW_TEST_REDIS_DB``
moves it), keys and queues named after the pytest process.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

# The Redis database the worker tests use (keys under a per-run prefix, wiped around each
# test); TOPVIEW_TEST_REDIS_DB moves it off a database of yours.
REDIS_DB_URL = f"redis://127.0.0.1:6379/{os.environ.get('TOPVIEW_TEST_REDIS_DB', '14')}"
RECORD_URL = os.environ.get("TOPVIEW_TEST_RECORD", REDIS_DB_URL)
PREFIX = os.environ.get("TOPVIEW_TEST_PREFIX", f"topview-tests-{os.getpid()}")
QUEUE = os.environ.get("TOPVIEW_TEST_QUEUE", PREFIX)
# A table of "the user's own data": a receiver writes a row per notice into it, in the
# transaction that records the outcome (the ``receiver_rows`` fixture creates it).
RECEIVER_ROWS = "topview_test_receiver_rows"

_redis: redis.Redis | None = None


def records() -> redis.Redis:
    """The Redis database where receivers record what they did."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(RECORD_URL, decode_responses=True)
    return _redis


def key(name: str) -> str:
    return f"{PREFIX}:{name}"


def recording_receiver(sender: Any, notice: Any, **kwargs: Any) -> None:
    """Counts calls per notice uuid at once, and, once the outcome commits (the idiom for
    side effects), completed runs; writes a row into ``RECEIVER_ROWS`` when told to; fails
    or sleeps when told to."""
    from django.db import connection, transaction

    # One round trip before the work and one after, so the benchmark (which uses this
    # receiver) measures the pipeline rather than chatter with Redis.
    pipe = records().pipeline(transaction=False)
    pipe.hincrby(key("calls"), notice.uuid, 1)
    pipe.rpush(key(f"times:{notice.uuid}"), time.time())
    pipe.sismember(key("fail"), notice.task_id)
    pipe.hget(key("sleep"), notice.task_id)
    pipe.get(key("rows"))
    *_, fail, delay, rows = pipe.execute()
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {RECEIVER_ROWS} (uuid) VALUES (%s)", [notice.uuid])
    if delay:
        time.sleep(float(delay))
    if fail:
        raise RuntimeError("told to fail")
    uuid = notice.uuid
    transaction.on_commit(lambda: records().hincrby(key("fired"), uuid, 1))


class _CountCommitted:
    """An on-commit hook: count the notices of one transaction as fired, stamped with the
    commit's time, in one Redis round trip."""

    def __init__(self) -> None:
        self.uuids: list[str] = []

    def __call__(self) -> None:
        pipe = records().pipeline(transaction=False)
        for uuid in self.uuids:
            pipe.hincrby(key("fired"), uuid, 1)
        pipe.hset(key("fired_at"), mapping=dict.fromkeys(self.uuids, time.time()))
        pipe.execute()


def counting_receiver(sender: Any, notice: Any, **kwargs: Any) -> None:
    """The benchmarks' receiver: counts each notice whose outcome commits, as
    ``recording_receiver`` does, but with one Redis round trip per transaction (an attempt
    at a batch), after its commit, so the figures are the pipeline's rather than this
    instrument's."""
    from django.db import connection, transaction

    hooks = connection.run_on_commit
    # The hook of this transaction and savepoint, if a notice before this one added it: a
    # rolled-back savepoint drops its hooks, and so its notices, with it.
    if (
        hooks
        and isinstance(hooks[-1][1], _CountCommitted)
        and hooks[-1][0] == set(connection.savepoint_ids)
    ):
        hooks[-1][1].uuids.append(notice.uuid)
        return
    hook = _CountCommitted()
    hook.uuids.append(notice.uuid)
    transaction.on_commit(hook)


def fired_at(uuids: list[str]) -> list[float | None]:
    """When each notice's outcome committed (``counting_receiver``'s stamp), else when its
    receiver last ran (``recording_receiver``'s); None if neither."""
    if not uuids:
        return []
    pipe = records().pipeline(transaction=False)
    pipe.hmget(key("fired_at"), uuids)
    for uuid in uuids:
        pipe.lindex(key(f"times:{uuid}"), -1)
    stamps, *called = pipe.execute()
    return [
        float(stamp) if stamp is not None else (None if call is None else float(call))
        for stamp, call in zip(stamps, called, strict=True)
    ]


def fired() -> dict[str, int]:
    """Completed receiver runs per notice uuid (counted once their outcome committed)."""
    return {uuid: int(n) for uuid, n in records().hgetall(key("fired")).items()}


def calls() -> dict[str, int]:
    """Receiver runs per notice uuid, rolled back ones included."""
    return {uuid: int(n) for uuid, n in records().hgetall(key("calls")).items()}


def cleanup_redis() -> None:
    r = records()
    # Our counters and queue, and kombu's bookkeeping of that queue.
    names = [*r.scan_iter(f"{PREFIX}*"), *r.scan_iter(f"_kombu.binding*.{QUEUE}")]
    if names:
        r.delete(*names)
