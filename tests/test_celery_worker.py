"""Real Celery workers on Redis, processing notices stored in the PostgreSQL test database.

This module is also the Celery app of those workers (``celery -A tests.test_celery_worker``)
and the WSGI app of the gunicorn servers the tests start (``tests.test_celery_worker:
application``). In those processes (TOPVIEW_TEST_ROLE is set) it configures Django from the
environment and connects a receiver that records its effects in Redis: signals sent in
another process are invisible to the test, Redis counters are not.

Isolation from other users of the machine's Redis: database 14, a queue and key prefix named
after the pytest process. Tests that stop a broker start their own redis-server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django
import pytest
import redis
from celery import Celery

ROLE = os.environ.get("TOPVIEW_TEST_ROLE")  # "worker" | "web" | None (the pytest process)
# The Redis database the Celery tests use (keys under a per-run prefix, wiped around each
# test); TOPVIEW_TEST_REDIS_DB moves it off a database of yours.
REDIS_DB_URL = f"redis://127.0.0.1:6379/{os.environ.get('TOPVIEW_TEST_REDIS_DB', '14')}"
BROKER_URL = os.environ.get("TOPVIEW_TEST_BROKER", REDIS_DB_URL)
RECORD_URL = os.environ.get("TOPVIEW_TEST_RECORD", REDIS_DB_URL)
PREFIX = os.environ.get("TOPVIEW_TEST_PREFIX", f"topview-tests-{os.getpid()}")
QUEUE = os.environ.get("TOPVIEW_TEST_QUEUE", PREFIX)
ROOT = Path(__file__).resolve().parent.parent

if ROLE:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings as django_settings

    # The test decides retry timings etc. for the processes it starts.
    django_settings.TOPVIEW_CALLBACKS = {
        **django_settings.TOPVIEW_CALLBACKS,
        **json.loads(os.environ.get("TOPVIEW_TEST_OVERRIDES", "{}")),
    }
    django.setup()

app = Celery("topview_tests", include=["topview_callbacks.tasks"])
app.conf.update(
    broker_url=BROKER_URL,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=int(os.environ.get("TOPVIEW_TEST_PREFETCH", "4")),
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("TOPVIEW_TEST_VISIBILITY", "3600")),
        # Look for messages of dead workers every second, not every ~100 s; a worker killed
        # while holding the restore lock must not block restores for the default 5 minutes.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 3,
    },
    worker_hijack_root_logger=False,
)
# As the README recommends: keep database connections across tasks (Celery closes them after
# every task otherwise). TOPVIEW_TEST_DB_REUSE_MAX=0 gives Celery's default.
app.conf.update(CELERY_DB_REUSE_MAX=int(os.environ.get("TOPVIEW_TEST_DB_REUSE_MAX", "1000")))
if os.environ.get("TOPVIEW_TEST_BEAT_SWEEP"):
    app.conf.beat_schedule = {
        "sweep": {
            "task": "topview_callbacks.sweep",
            "schedule": float(os.environ["TOPVIEW_TEST_BEAT_SWEEP"]),
        }
    }

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
    """Counts calls and completed runs per notice uuid; fails or sleeps when told to."""
    # One round trip before the work and one after, so the benchmark (which uses this
    # receiver) measures the pipeline rather than chatter with Redis.
    pipe = records().pipeline(transaction=False)
    pipe.hincrby(key("calls"), notice.uuid, 1)
    pipe.rpush(key(f"times:{notice.uuid}"), time.time())
    pipe.sismember(key("fail"), notice.task_id)
    pipe.hget(key("sleep"), notice.task_id)
    *_, fail, delay = pipe.execute()
    if fail:
        raise RuntimeError("told to fail")
    if delay:
        time.sleep(float(delay))
    records().hincrby(key("fired"), notice.uuid, 1)


if ROLE:
    from topview_callbacks import signals as _signals

    _signals.notice_received.connect(recording_receiver, dispatch_uid="topview-test-recorder")

WORKER_READY = "topview-test-worker-ready"

if ROLE == "worker":
    from celery.signals import worker_ready

    @worker_ready.connect
    def _say_ready(**kwargs: Any) -> None:
        # Whatever the log level, tell the test (reading the worker's output) it is ready.
        print(WORKER_READY, file=sys.stderr, flush=True)


if ROLE == "web":
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()


# --- helpers shared with tests/test_load.py and bench/celery_rate.py ---------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def process_env(db_name: str, **extra: str) -> dict[str, str]:
    """Environment of a worker or web process using the test database ``db_name``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TOPVIEW_TEST_DATABASE": "postgres",
        "PGDATABASE": db_name,
        "TOPVIEW_TEST_PREFIX": PREFIX,
        "TOPVIEW_TEST_QUEUE": QUEUE,
        "TOPVIEW_TEST_BROKER": BROKER_URL,
        "TOPVIEW_TEST_RECORD": RECORD_URL,
        "PYTHONPATH": str(ROOT),
    }
    env.update(extra)
    return env


class Service:
    """A subprocess in its own session (so the whole group can be killed), logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log = Path(tempfile.mkstemp(prefix=f"topview-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.scratch: str | None = None  # a directory removed with the log

    def start(self, ready: Callable[[], Any] | None = None, timeout: float = 60) -> Service:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if ready is not None:
            try:
                wait_for(lambda: ready() or self._exited(), timeout, f"{self.name} to start")
                assert self.proc.poll() is None, f"{self.name} exited"
            except AssertionError as exc:
                self.kill()
                raise AssertionError(f"{exc}:\n{self.tail()}") from None
        return self

    def _exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def celery_worker(
    db_name: str,
    *,
    concurrency: int = 1,
    overrides: dict[str, Any] | None = None,
    loglevel: str = "info",
    pool_name: str = "prefork",
    include: tuple[str, ...] = (),
    **env: str,
) -> Service:
    pool = ["-P", "solo"] if concurrency == 1 else ["-P", pool_name, "-c", str(concurrency)]
    scratch = tempfile.mkdtemp(prefix="topview-beat-") if "TOPVIEW_TEST_BEAT_SWEEP" in env else None
    beat = ["-B", "-s", os.path.join(scratch, "schedule")] if scratch else []
    argv = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "tests.test_celery_worker",
        "worker",
        *(f"--include={module}" for module in include),
        "-Q",
        QUEUE,
        "-n",
        f"{PREFIX}-{time.monotonic_ns()}@%h",
        "-l",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *pool,
        *beat,
    ]
    extra = {"TOPVIEW_TEST_ROLE": "worker", "TOPVIEW_TEST_OVERRIDES": json.dumps(overrides or {})}
    service = Service("worker", argv, process_env(db_name, **extra, **env))
    service.scratch = scratch
    return service.start(lambda: WORKER_READY in service.output())


def gunicorn(
    db_name: str, *, workers: int = 1, overrides: dict[str, Any] | None = None, **env: str
) -> tuple[Service, int]:
    port = free_port()
    argv = [
        str(Path(sys.executable).parent / "gunicorn"),
        "tests.test_celery_worker:application",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "--backlog",
        "2048",
    ]
    extra = {"TOPVIEW_TEST_ROLE": "web", "TOPVIEW_TEST_OVERRIDES": json.dumps(overrides or {})}
    service = Service("gunicorn", argv, process_env(db_name, **extra, **env))

    def answers() -> bool:
        try:
            return get(port, "/topview/notice/")[0] == 200
        except OSError:
            return False

    return service.start(answers), port


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_notice(port: int, payload: dict[str, Any], uid: str, timeout: float = 30) -> Any:
    """POST over real HTTP; returns (status, parsed JSON body, seconds taken)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/topview/notice/",
            body=json.dumps(payload),
            headers={"Content-Type": "application/json", "Topview-Uid": uid},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read()), time.monotonic() - started
    finally:
        conn.close()


def private_redis(port: int) -> Service:
    """A throwaway redis-server: tests stop this one, never the machine's shared Redis."""
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    service = Service("redis", argv, dict(os.environ))

    def answers() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    return service.start(answers, timeout=20)


def cleanup_redis() -> None:
    r = records()
    # Our counters and queue, and kombu's bookkeeping of that queue.
    names = [*r.scan_iter(f"{PREFIX}*"), *r.scan_iter(f"_kombu.binding*.{QUEUE}")]
    if names:
        r.delete(*names)


# --- fixtures -------------------------------------------------------------------------------

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def db_name(transactional_db: None) -> str:
    from django.db import connection

    return str(connection.settings_dict["NAME"])


@pytest.fixture(autouse=True)
def clean_records() -> Iterator[None]:
    cleanup_redis()
    yield
    cleanup_redis()


@pytest.fixture
def uid() -> str:
    from topview_callbacks.conf import topview_settings

    return topview_settings.uid


@pytest.fixture
def running() -> Iterator[list[Service]]:
    """Services a test starts; all stopped (and their logs shown on failure) afterwards."""
    services: list[Service] = []
    yield services
    for service in reversed(services):
        service.stop()
        service.log.unlink(missing_ok=True)


def fired() -> dict[str, int]:
    return {uuid: int(n) for uuid, n in records().hgetall(key("fired")).items()}


def calls() -> dict[str, int]:
    return {uuid: int(n) for uuid, n in records().hgetall(key("calls")).items()}


def states(*uuids: str) -> dict[str, str]:
    from topview_callbacks.models import Notice

    return dict(Notice.objects.filter(uuid__in=uuids).values_list("uuid", "state"))


def kill_mid_notice(worker: Service) -> dict[str, Any]:
    """Deliver a notice whose receiver sleeps and SIGKILL ``worker`` while it does; the
    notice is left processing, its signal not fired. Returns its payload."""
    from topview_callbacks.testing import deliver_notice, notice_payload

    payload = notice_payload("VOICE_TEXT2VOICE")
    records().hset(key("sleep"), payload["taskId"], 60)
    assert deliver_notice(payload).status_code == 200
    wait_for(lambda: calls().get(payload["uuid"]) == 1, 30, "the receiver to start")
    worker.kill(signal.SIGKILL)
    records().hdel(key("sleep"), payload["taskId"])
    assert states(payload["uuid"]) == {payload["uuid"]: "processing"}
    assert fired() == {}
    return payload


# --- tests ----------------------------------------------------------------------------------


def test_worker_processes_every_notice_once(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import tasks
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    running.append(celery_worker(db_name))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    payloads = [notice_payload(biz) for biz in ("M2V_PREVIEW", "VOICE_CLONE", "SCRAPER") * 7]
    for payload in payloads + payloads[:5]:  # five delivered twice
        assert deliver_notice(payload).status_code == 200
    uuids = [p["uuid"] for p in payloads]
    wait_for(lambda: set(states(*uuids).values()) == {"processed"}, 60, "processing")
    # A redelivered message for a processed notice does nothing.
    tasks.enqueue_notice(Notice.objects.get(uuid=uuids[0]).pk)
    time.sleep(1.0)
    assert fired() == dict.fromkeys(uuids, 1)
    assert set(Notice.objects.values_list("attempts", flat=True)) == {1}
    assert f"Topview notice {uuids[0]}" in running[0].output()  # structured log lines


def test_batches_process_every_notice_once_and_retry_failures_alone(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    batching = {"BATCH_SIZE": 10, "MAX_ATTEMPTS": 2, "RETRY_BACKOFF": 0.5}
    running.append(celery_worker(db_name, concurrency=2, overrides=batching))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery", **batching}
    payloads = [notice_payload(biz) for biz in ("M2V_PREVIEW", "VOICE_CLONE", "SCRAPER") * 9]
    failing = payloads[4]
    records().sadd(key("fail"), failing["taskId"])
    for payload in payloads + payloads[:3]:  # three delivered twice
        assert deliver_notice(payload).status_code == 200
    uuids = [p["uuid"] for p in payloads]
    expected = {uuid: "processed" for uuid in uuids} | {failing["uuid"]: "failed"}

    def settled() -> bool:
        done = states(*uuids) == expected
        return done and Notice.objects.get(uuid=failing["uuid"]).attempts == 2

    wait_for(settled, 60, "the batches and the retry")
    time.sleep(1.0)
    assert fired() == {uuid: 1 for uuid in uuids if uuid != failing["uuid"]}
    assert calls()[failing["uuid"]] == 2  # the drain's attempt, then its own retry message
    assert "topview_callbacks.drain" in running[0].output()


def test_a_worker_keeping_connections_recovers_when_the_database_drops_them(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from django.db import connection

    from topview_callbacks.testing import deliver_notice, notice_payload

    running.append(celery_worker(db_name, overrides={"RETRY_BACKOFF": 0.2}))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    first = notice_payload()
    assert deliver_notice(first).status_code == 200
    wait_for(lambda: states(first["uuid"]) == {first["uuid"]: "processed"}, 30, "first notice")

    # A restart or failover: the database ends the connection the worker kept.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [db_name],
        )
        assert cursor.fetchone()[0] >= 1
    later = [notice_payload() for _ in range(3)]
    for payload in later:
        assert deliver_notice(payload).status_code == 200
    uuids = [p["uuid"] for p in later]
    wait_for(lambda: set(states(*uuids).values()) == {"processed"}, 30, "notices after the drop")
    assert fired() == dict.fromkeys([first["uuid"], *uuids], 1)
    assert "Database error processing" in running[0].output()  # it did meet the dropped one


def test_a_raising_receiver_is_retried_with_backoff_then_failed_and_replay_runs_it(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import processing, signals
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import deliver_notice, notice_payload

    overrides = {"MAX_ATTEMPTS": 3, "RETRY_BACKOFF": 1.0, "RETRY_JITTER": True}
    running.append(celery_worker(db_name, overrides=overrides))
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    payload = notice_payload("M2V_EXPORT")
    records().sadd(key("fail"), payload["taskId"])
    assert deliver_notice(payload).status_code == 200

    def gave_up() -> bool:
        notice = Notice.objects.get(uuid=payload["uuid"])
        return (
            notice.state == "failed"
            and notice.attempts == 3
            and "giving up" in (running[0].output())
        )

    wait_for(gave_up, 30, "three failed attempts")
    notice = Notice.objects.get(uuid=payload["uuid"])
    assert "told to fail" in notice.last_error
    times = [float(t) for t in records().lrange(key(f"times:{payload['uuid']}"), 0, -1)]
    assert len(times) == 3
    # Backoff 1 s then 2 s, each with "equal jitter" (50-100% of it).
    assert 0.5 <= times[1] - times[0] < 5
    assert 1.0 <= times[2] - times[1] < 6
    assert fired() == {}
    time.sleep(1.0)
    assert calls() == {payload["uuid"]: 3}  # no 4th attempt

    records().srem(key("fail"), payload["taskId"])
    signals.notice_received.connect(recording_receiver, dispatch_uid="topview-test-recorder")
    try:
        replayed = processing.replay_notice(notice.pk)
    finally:
        signals.notice_received.disconnect(dispatch_uid="topview-test-recorder")
    assert replayed is not None and replayed.state == "processed"
    assert fired() == {payload["uuid"]: 1}


def test_a_worker_killed_mid_processing_is_taken_over_once(
    db_name: str, running: list[Service], settings: Any
) -> None:
    from topview_callbacks import sweeping, tasks
    from topview_callbacks.models import Notice

    # Redis redelivers an unacknowledged message after the visibility timeout; the sweep
    # (SWEEP_AFTER) queues it again anyway. Whichever comes first processes it, once.
    # A visibility timeout well past the sweep below, so the sweep always comes first (at
    # 6 s the redelivery sometimes beat a sweep slowed by a busy machine).
    worker_env = {"TOPVIEW_TEST_VISIBILITY": "15", "TOPVIEW_TEST_PREFETCH": "1"}
    overrides = {"SWEEP_AFTER": 3}
    first = celery_worker(db_name, overrides=overrides, **worker_env)
    running.append(first)
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "PROCESSING": "celery"}
    payload = kill_mid_notice(first)

    second = celery_worker(db_name, overrides=overrides, **worker_env)
    running.append(second)
    time.sleep(3.5)
    settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, "SWEEP_AFTER": 3}
    assert sweeping.sweep(restart=tasks.enqueue_notice) == 1
    wait_for(lambda: fired().get(payload["uuid"]), 30, "the notice to be processed")
    notice = Notice.objects.get(uuid=payload["uuid"])

    # Both messages reach the new worker: the one the killed worker held (delivered again
    # after the visibility timeout) and the sweep's. One processes, the other finds it done.
    def handled() -> list[str]:
        lines = second.output().splitlines()
        done = [line for line in lines if f"Topview notice {notice.uuid} (" in line]
        skipped = [line for line in lines if f"notice id={notice.pk} not claimed" in line]
        return done + skipped if len(done) + len(skipped) >= 2 else []

    lines = wait_for(handled, 40, "both messages", every=0.5)
    assert len(lines) == 2, lines
    time.sleep(0.5)
    assert notice.state == "processed"
    assert fired() == {payload["uuid"]: 1}
    assert calls() == {payload["uuid"]: 2}  # the killed run and the one that completed


def test_broker_down_when_a_notice_arrives_then_back(
    db_name: str, running: list[Service], uid: str
) -> None:
    from topview_callbacks.models import Notice
    from topview_callbacks.testing import notice_payload

    broker_port = free_port()
    broker_url = f"redis://127.0.0.1:{broker_port}/0"
    broker = private_redis(broker_port)
    running.append(broker)
    web, port = gunicorn(
        db_name, overrides={"PROCESSING": "celery"}, TOPVIEW_TEST_BROKER=broker_url
    )
    running.append(web)
    # The worker sweeps every second (beat), taking notices pending for over 2 s.
    worker = celery_worker(
        db_name,
        overrides={"SWEEP_AFTER": 2},
        TOPVIEW_TEST_BROKER=broker_url,
        TOPVIEW_TEST_BEAT_SWEEP="1",
    )
    running.append(worker)

    before = notice_payload()
    assert post_notice(port, before, uid)[0] == 200
    wait_for(lambda: fired().get(before["uuid"]), 30, "processing with the broker up")

    broker.stop()
    during = notice_payload()
    status, body, seconds = post_notice(port, during, uid)
    assert status == 200 and body["result"]["result"] == "success"
    assert seconds < 10  # publishing gives up quickly
    assert Notice.objects.get(uuid=during["uuid"]).state == "pending"
    assert "it stays pending until the sweep" in web.output()

    broker.start(lambda: " Ready to accept connections" in broker.output(), timeout=20)
    wait_for(lambda: fired().get(during["uuid"]), 90, "processing once the broker is back")
    time.sleep(2.0)  # further sweeps must not fire it again
    assert fired() == {before["uuid"]: 1, during["uuid"]: 1}
    assert Notice.objects.get(uuid=during["uuid"]).state == "processed"


class CuttableProxy:
    """A TCP proxy to PostgreSQL that the test can cut (the database "goes away") and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.listener is not None
        # shutdown() wakes the thread blocked in accept(); close() alone would not, and the
        # socket would keep accepting connections.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()


def test_database_unavailable_answers_503_and_writes_nothing(
    db_name: str, running: list[Service], uid: str
) -> None:
    from django.db import connection

    from topview_callbacks.models import Notice
    from topview_callbacks.testing import notice_payload

    proxy = CuttableProxy(int(connection.settings_dict["PORT"] or 5432))
    web, port = gunicorn(db_name, overrides={"PROCESSING": "manual"}, PGPORT=str(proxy.port))
    running.append(web)
    first = notice_payload()
    assert post_notice(port, first, uid)[0] == 200  # through the proxy, on a kept connection

    proxy.cut()
    second = notice_payload()
    for _ in range(2):  # the kept connection breaks; then no new one can be made
        status, body, _seconds = post_notice(port, second, uid)
        assert status == 503
        assert body == {
            "code": "503",
            "message": "The database is unavailable; please retry.",
            "result": {"uuid": second["uuid"], "topviewUid": uid, "result": "fail"},
        }
    assert not Notice.objects.filter(uuid=second["uuid"]).exists()

    proxy.restore()
    status, body, _seconds = post_notice(port, second, uid)  # Topview retries
    assert status == 200 and body["result"]["result"] == "success"
    stored = Notice.objects.get(uuid=second["uuid"])
    assert (stored.delivery_count, stored.state) == (1, "pending")
    assert Notice.objects.count() == 2
