"""A real HTTP server on 127.0.0.1 that serves media the ways Topview's storage (and worse)
might: used by the archiving tests and the archiving benchmark.

Paths (the last segment is the file name, e.g. ``/ok/a.mp4``):

- ``/ok/``: the body with Content-Length; ``/chunked/``: chunked, no Content-Length;
- ``/slow/``: 16 KiB pieces, ``slow_delay`` apart; ``/stall/``: headers, then silence;
- ``/missing/``: 404; ``/html/``: a text/html body;
- ``/short/``: a Content-Length of the whole body, half of it, then the connection closes;
- ``/expiring/``: 403 unless the query has ``sig=fresh``;
- ``/flaky/``: 503 for the first ``flaky_failures`` requests, then the body;
- ``/redirect/?to=URL``: 302 to URL; ``/loop/``: 302 to itself;
- ``/file/``: ``big_file`` from disk (the benchmark), streamed in 1 MiB pieces;
- ``/typed/?type=T``: the body as type ``T`` (``none``: no Content-Type header at all);
- ``/trickle/``: ``trickle_bytes`` bytes, one every ``trickle_delay`` seconds;
  ``/trickleheaders/``: the same, inside a header;
- ``/badlength/``: ``Content-Length: ²``, the body, then the connection closes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


def body_for(name: str, size: int) -> bytes:
    """Deterministic bytes for a file name, so a test can check what was stored."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class _Handler(BaseHTTPRequestHandler):
    server: MediaServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        route = parts.path.strip("/").split("/", 1)[0]
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        server = self.server
        with server.lock:
            server.hits[parts.path] += 1
            hits = server.hits[parts.path]
        body = body_for(parts.path.rsplit("/", 1)[-1], server.size)
        content_type = "video/mp4"
        if route == "missing":
            return self._answer(404, b"<Error>NoSuchKey</Error>", "application/xml")
        if route == "expiring" and query.get("sig") != "fresh":
            return self._answer(403, b"<Error>Request has expired</Error>", "application/xml")
        if route == "flaky" and hits <= server.flaky_failures:
            return self._answer(503, b"busy", "text/plain")
        if route == "redirect":
            return self._redirect(query["to"])
        if route == "loop":
            return self._redirect(parts.path)
        if route == "html":
            return self._answer(200, b"<html>not a video</html>" * 10, "text/html")
        if route == "chunked":
            return self._chunked(body, content_type)
        if route == "stall":
            self._headers(200, content_type, len(body))
            time.sleep(server.stall_seconds)
            return None
        if route == "slow":
            self._headers(200, content_type, len(body))
            for start in range(0, len(body), 16384):
                self.wfile.write(body[start : start + 16384])
                time.sleep(server.slow_delay)
            return None
        if route == "short":
            self._headers(200, content_type, len(body))
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        if route == "typed":
            sent = query.get("type", "none")
            return self._answer(200, body, None if sent == "none" else sent)
        if route == "trickle":
            self._headers(200, content_type, server.trickle_bytes)
            for _ in range(server.trickle_bytes):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(server.trickle_delay)
            return None
        if route == "trickleheaders":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nX-Slow: ")
            for _ in range(server.trickle_bytes):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(server.trickle_delay)
            self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
            return None
        if route == "badlength":
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", "\u00b2")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return None
        if route == "file" and server.big_file is not None:
            return self._file(server.big_file)
        return self._answer(200, body, content_type)

    def _headers(self, status: int, content_type: str | None, length: int | None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _answer(self, status: int, body: bytes, content_type: str | None) -> None:
        self._headers(status, content_type, len(body))
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _chunked(self, body: bytes, content_type: str) -> None:
        self._headers(200, content_type, None)
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _file(self, path: Path) -> None:
        self._headers(200, "video/mp4", path.stat().st_size)
        with path.open("rb") as handle:
            while piece := handle.read(1024 * 1024):
                self.wfile.write(piece)


class MediaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, size: int = 200_000) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.size = size
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.flaky_failures = 1
        self.slow_delay = 0.01
        self.stall_seconds = 3.0
        self.trickle_bytes = 30
        self.trickle_delay = 0.5
        self.big_file: Path | None = None
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)
