"""Requests through Django's ASGI handler itself (what uvicorn calls), not the test client's.

Django's ``AsyncClient`` runs views in one shared thread and never closes their
connections; the real handler gives each request its own thread-sensitive context and
sends the request signals that close them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from django.core.asgi import get_asgi_application


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


async def _post(application: Any, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application(scope, receive, send)
    start = sent[0]
    return Answer(
        status=start["status"],
        headers={name.decode().lower(): value.decode() for name, value in start["headers"]},
        content=b"".join(message.get("body", b"") for message in sent[1:]),
    )


def post_at_once(path: str, bodies: list[str], headers: dict[str, str]) -> list[Answer]:
    """POST every body at the same time through one ASGI application; answers in order."""
    application = get_asgi_application()

    async def everything() -> list[Answer]:
        return await asyncio.gather(
            *(_post(application, path, body.encode(), headers) for body in bodies)
        )

    return asyncio.run(everything())
