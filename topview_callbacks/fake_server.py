"""The fake Topview over real HTTP: ``FakeTopviewServer``, for demos and end-to-end tests.

It serves a ``FakeTopview`` (``fake_topview``) on the loopback interface and POSTs the due
callbacks to their ``noticeUrl`` from a background thread; ``manage.py topview_fake_server``
runs one. Re-exported by ``topview_callbacks.testing``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from topview_callbacks.fake_tasks import Delivery
from topview_callbacks.fake_topview import FakeTopview

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
        while not self._stop.is_set():
            self._sending.set()
            for delivery in self.fake.pop_due():
                self._send(delivery)
            self._sending.clear()
            wait = self.fake.next_due_in()
            self._stop.wait(0.05 if wait is None else min(max(wait, 0.001), 0.05))

    def _send(self, delivery: Delivery) -> None:
        host = urlsplit(delivery.url).hostname or ""
        if host not in LOOPBACK_HOSTS:
            logger.warning("fake Topview: not calling non-loopback noticeUrl %s", delivery.url)
            self.fake.record_sent(delivery, None, False)
            return
        try:
            response = self._session.post(
                delivery.url,
                data=json.dumps(delivery.payload),
                headers={"Topview-Uid": delivery.uid, "Content-Type": "application/json"},
                timeout=self.callback_timeout,
            )
        except requests.RequestException as exc:
            logger.warning("fake Topview: callback to %s failed: %s", delivery.url, exc)
            self.fake.record_sent(delivery, None, False)
            return
        try:
            ack = response.json()
        except ValueError:
            ack = None
        acked = (
            response.status_code == 200
            and isinstance(ack, dict)
            and ack.get("code") == "200"
            and isinstance(ack.get("result"), dict)
            and ack["result"].get("uuid") == delivery.payload["uuid"]
        )
        self.fake.record_sent(delivery, response.status_code, acked)
