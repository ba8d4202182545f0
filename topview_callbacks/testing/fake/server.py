"""The fake Topview over real HTTP: ``FakeTopviewServer``, for demos and end-to-end tests.

It serves a ``FakeTopview`` (``testing.fake.api``) on the loopback interface and POSTs the
due callbacks to their ``noticeUrl`` from a background thread; ``manage.py
topview_fake_server`` runs one.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from topview_callbacks.testing.delivery import send_notice
from topview_callbacks.testing.fake.api import FakeTopview
from topview_callbacks.testing.fake.runner import ScheduledCallback

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, answer = self.server.fake.handle(
            self.command, self.path, dict(self.headers.items()), body
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake Topview: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTopview


class FakeTopviewServer:
    """``FakeTopview`` over real HTTP on the loopback interface, with callback delivery.

    ``with FakeTopviewServer(FakeTopview(duration=(1, 5), drop=0.3)) as server:`` then point
    ``API_BASE_URL`` at ``server.url``. Callbacks go only to loopback noticeUrls.
    """

    def __init__(
        self,
        fake: FakeTopview | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        callback_timeout: float = 10.0,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"The fake Topview serves loopback only, not {host!r}.")
        self.fake = fake or FakeTopview()
        self.httpd = _Server((host, port), _Handler)
        self.httpd.fake = self.fake
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.fake.base_url = self.url
        self.callback_timeout = callback_timeout
        self._stop = threading.Event()
        self._sending = threading.Event()  # set while a batch of callbacks is being sent
        self._threads: list[threading.Thread] = []
        self._session = requests.Session()

    def start(self) -> FakeTopviewServer:
        serve = threading.Thread(
            target=self.httpd.serve_forever, name="fake-topview-http", daemon=True
        )
        deliver = threading.Thread(
            target=self._deliver_loop, name="fake-topview-callbacks", daemon=True
        )
        self._threads = [serve, deliver]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._session.close()

    def __enter__(self) -> FakeTopviewServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every task ended and every callback was sent; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.fake.idle() and not self._sending.is_set():
                return True
            time.sleep(0.02)
        return False

    def _deliver_loop(self) -> None:
        runner = self.fake.runner
        while not self._stop.is_set():
            self._sending.set()
            for callback in runner.pop_due():
                runner.record_sent(callback, *self._send(callback))
            self._sending.clear()
            wait = runner.next_due_in()
            self._stop.wait(0.05 if wait is None else min(max(wait, 0.001), 0.05))

    def _send(self, callback: ScheduledCallback) -> tuple[int | None, bool]:
        """POST ``callback``: (HTTP status or None, whether the contract's ack came back)."""
        host = urlsplit(callback.url).hostname or ""
        if host not in LOOPBACK_HOSTS:
            logger.warning("fake Topview: not calling non-loopback noticeUrl %s", callback.url)
            return None, False
        try:
            response = send_notice(
                callback.url,
                callback.payload,
                uid=callback.uid,
                timeout=self.callback_timeout,
                session=self._session,
            )
        except requests.RequestException as exc:
            logger.warning("fake Topview: callback to %s failed: %s", callback.url, exc)
            return None, False
        try:
            ack = response.json()
        except ValueError:
            ack = None
        acked = (
            response.status_code == 200
            and isinstance(ack, dict)
            and ack.get("code") == "200"
            and isinstance(ack.get("result"), dict)
            and ack["result"].get("uuid") == callback.payload["uuid"]
        )
        return response.status_code, acked
