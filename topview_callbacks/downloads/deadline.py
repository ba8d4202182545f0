"""A download's total deadline (``ARCHIVE_DEADLINE``): connect, redirects, headers and body.

Socket timeouts (``ARCHIVE_TIMEOUT``) limit each silence, not the whole: a server that sends
one byte every few seconds never trips one, and one blocked read fills a whole buffer
before it returns. So a timer shuts the download's sockets down when the deadline passes;
the read blocked on one returns at once, and ``downloads.storing`` fails the download as
retryable, saying why.
No per-read cost: the fast local-disk path keeps reading into its one buffer.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection


class Deadline:
    """``with Deadline(seconds) as deadline:`` every socket ``watch``-ed inside is shut down
    when ``seconds`` have passed since the block began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        _shut(sock)

    @property
    def message(self) -> str:
        return f"the download took longer than ARCHIVE_DEADLINE ({self.seconds:g} s)"

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to stop
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Hands each new connection's socket to the download's ``Deadline``."""

    deadline: Deadline | None = None

    def __init__(self, *args: Any, deadline: Deadline | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]  # urllib3's connection
        if self.deadline is not None:
            self.deadline.watch(sock)  # before TLS: a trickled handshake is cut off too
        return sock


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


def watch_pool(pool: urllib3.HTTPConnectionPool) -> None:
    """Make ``pool`` open connections whose sockets its ``deadline`` (``conn_kw``) watches."""
    if isinstance(pool, urllib3.HTTPSConnectionPool):
        pool.ConnectionCls = WatchedHTTPSConnection
    else:
        pool.ConnectionCls = WatchedHTTPConnection
