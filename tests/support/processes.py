"""The processes the tests start and talk to over 127.0.0.1: Celery and Tasks workers,
gunicorn, a private redis-server, a TCP proxy that can cut the database away."""

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.support.recording import PREFIX, QUEUE, RECORD_URL, calls, fired, key, records
from tests.support.worker import BROKER_URL, WORKER_READY

ROOT = Path(__file__).resolve().parents[2]


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
        "tests.support.worker",
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
    db_name: str,
    *,
    workers: int = 1,
    overrides: dict[str, Any] | None = None,
    port: int | None = None,
    **env: str,
) -> tuple[Service, int]:
    """gunicorn serving the suite's project on ``port`` (a free one by default)."""
    port = port or free_port()
    argv = [
        str(Path(sys.executable).parent / "gunicorn"),
        "tests.support.worker:application",
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


TASKS_MODE = {"PROCESSING": "tasks", "TASKS_BACKEND": "database", "TASKS_QUEUE": QUEUE}
# A Tasks worker process: the recording receiver (imported with TOPVIEW_TEST_ROLE set), our
# logs on stderr, then django-tasks-db's own command.
_RUN_WORKER = f"""
import logging, sys
level = logging.INFO if "-v0" not in sys.argv else logging.WARNING
logging.basicConfig(level=level, format="%(name)s %(levelname)s %(message)s")
import tests.support.worker
print({WORKER_READY!r}, file=sys.stderr, flush=True)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "db_worker", *sys.argv[1:]])
"""


def tasks_worker(
    database: str,
    *,
    overrides: dict[str, Any] | None = None,
    interval: float = 0.1,
    quiet: bool = False,
    **env: str,
) -> Service:
    """A ``db_worker`` on our queue of the "database" backend, started; ``quiet`` logs
    warnings only (the benchmarks)."""
    argv = [
        sys.executable,
        "-c",
        _RUN_WORKER,
        *(["-v0"] if quiet else []),
        "--backend=database",
        f"--queue-name={QUEUE}",
        f"--interval={interval}",
        "--no-startup-delay",
        "--no-reload",
        f"--worker-id={QUEUE}-{time.monotonic_ns()}"[-64:],
    ]
    extra = {
        "TOPVIEW_TEST_ROLE": "tasks-worker",
        "TOPVIEW_TEST_OVERRIDES": json.dumps({**TASKS_MODE, **(overrides or {})}),
    }
    service = Service("tasks-worker", argv, process_env(database, **extra, **env))
    return service.start(lambda: WORKER_READY in service.output())


def states(*uuids: str) -> dict[str, str]:
    from topview_callbacks.models import Notice

    return dict(Notice.objects.filter(uuid__in=uuids).values_list("uuid", "state"))


def kill_mid_notice(worker: Service) -> dict[str, Any]:
    """Deliver a notice whose receiver sleeps and SIGKILL ``worker`` while it does; the
    notice is left pending (its attempt never committed), its signal not fired. Returns
    its payload."""
    from topview_callbacks.testing import deliver_notice, notice_payload

    payload = notice_payload("VOICE_TEXT2VOICE")
    records().hset(key("sleep"), payload["taskId"], 60)
    assert deliver_notice(payload).status_code == 200
    wait_for(lambda: calls().get(payload["uuid"]) == 1, 30, "the receiver to start")
    worker.kill(signal.SIGKILL)
    records().hdel(key("sleep"), payload["taskId"])
    assert states(payload["uuid"]) == {payload["uuid"]: "pending"}
    assert fired() == {}
    return payload
