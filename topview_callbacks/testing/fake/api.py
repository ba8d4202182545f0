"""A fake Topview for tests and demos, with no account and no internet.

``FakeTopview`` answers requests the way Topview's API documentation describes, holding the
account's state (uploads, credit, injected failures); its tasks and their callbacks run in
a ``FakeTaskRunner`` (``testing.fake.runner``). Two transports put it in front of your code:

- ``mock_topview()`` (here): ``responses`` intercepts ``requests`` to ``API_BASE_URL``
  in-process, for unit tests. Callbacks are delivered when you ask (``deliver_callbacks()``).
- ``FakeTopviewServer`` (``testing.fake.server``): a real HTTP server on 127.0.0.1 that runs
  tasks on timers and POSTs callbacks to their ``noticeUrl``, and can drop, duplicate, delay
  and reorder them (``manage.py topview_fake_server``).

Where the real API is not documented (the check's ``result``, submit answers beyond
``taskId``/``noticeUuid``) the fake's choice is marked [I].
"""

from __future__ import annotations

import json
import re
import threading
import uuid as uuid_module
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from topview_callbacks import biz_types
from topview_callbacks.biz_types import BizType
from topview_callbacks.conf import topview_settings
from topview_callbacks.testing.fake.runner import (
    Chaos,
    FakeTask,
    FakeTaskRunner,
    ScheduledCallback,
    SentCallback,
    deliver_in_process,
)

UPLOAD_PREFIX = "/_fake_upload/"
UPLOAD_FORMATS = frozenset({"mp4", "mov", "png", "jpg", "jpeg", "bmp", "webp", "mp3", "wav", "m4a"})
MISSING_RESPONSES = "mock_topview() needs responses: pip install 'topview-callbacks[testing]'"
Answer = tuple[int, dict[str, str], bytes]  # an HTTP answer: (status, headers, body)


@dataclass
class _Failure:
    path: str | None
    code: str
    http_status: int
    message: str
    body: str | None
    times: int


class FakeTopview:
    """Topview's API as a state machine; thread-safe, transport-free (see ``handle``).

    Its tasks run in ``self.runner``, as ``chaos`` says or as its fields given by keyword
    say (``duration``, ``fail_rate``, ``drop``, ``duplicate``, ``delay``, ``reorder``,
    ``seed``, ``clock``: see ``Chaos``). ``accounts``: {uid: api_key} that may call; None
    accepts any non-empty pair. ``credit``: what is left; each submit costs one.
    """

    def __init__(
        self,
        *,
        chaos: Chaos | None = None,
        accounts: dict[str, str] | None = None,
        credit: float = 10_000.0,
        base_url: str = "",
        **options: Any,
    ) -> None:
        self.runner = FakeTaskRunner(chaos, **options)
        self.accounts = accounts
        self.credit = credit
        self.base_url = base_url.rstrip("/")
        self.uploads: dict[str, int | None] = {}  # fileId -> size once PUT
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API call
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()  # guards the above; the runner guards its own state

    # The tasks, run by the runner ----------------------------------------------------

    @property
    def chaos(self) -> Chaos:
        return self.runner.chaos

    @property
    def tasks(self) -> dict[tuple[str, str], FakeTask]:
        return self.runner.tasks

    @property
    def stats(self) -> dict[str, int]:
        return self.runner.stats

    @property
    def sent(self) -> list[SentCallback]:
        return self.runner.sent

    def finish(
        self, task_id: str, status: str = "success", *, biz_type: str | None = None
    ) -> FakeTask:
        """End a task now with ``status``; its callback becomes due (after ``delay``)."""
        return self.runner.finish(task_id, status, biz_type=biz_type)

    def task(self, task_id: str, biz_type: str | None = None) -> FakeTask:
        return self.runner.task(task_id, biz_type)

    def idle(self) -> bool:
        """True when every timed task has ended and every callback has been sent."""
        return self.runner.idle()

    def pop_due(self, now: float | None = None) -> list[ScheduledCallback]:
        """Callbacks whose time has come, in the order they are to be sent."""
        return self.runner.pop_due(now)

    def deliver_callbacks(
        self, send: Callable[[ScheduledCallback], Any] = deliver_in_process
    ) -> int:
        """Send every due callback with ``send`` (default: in-process ``deliver_notice``)."""
        return self.runner.deliver_callbacks(send)

    # Test controls -------------------------------------------------------------------

    def fail_next(
        self,
        path: str | None = None,
        *,
        code: str = "5003",
        http_status: int = 200,
        message: str = "Server busy, please try later",
        body: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls to ``path`` (any path: None) with an error.

        ``body`` replaces the envelope with raw text (e.g. a proxy's HTML error page).
        """
        with self._lock:
            self._failures.append(_Failure(path, code, http_status, message, body, times))

    # The API -------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one HTTP request: (status, headers, body)."""
        parts = urlsplit(url)
        path = parts.path
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        lower = {key.lower(): value for key, value in headers.items()}
        with self._lock:
            self.requests.append((method, path))
            if method == "PUT" and path.startswith(UPLOAD_PREFIX):
                return self._put_upload(path, lower, body)
            failure = self._take_failure(path)
            if failure is not None:
                if failure.body is not None:
                    return failure.http_status, {"Content-Type": "text/html"}, failure.body.encode()
                return _answer(failure.code, failure.message, None, failure.http_status)
            uid = lower.get("topview-uid", "")
            if not self._authorized(uid, lower.get("authorization", "")):
                return _answer("401", "Unauthorized, need to log in again", None)
            try:
                data = json.loads(body or b"{}") if method == "POST" else {}
            except ValueError:
                return _answer("4001", "Request data format does not match", None)
            if not isinstance(data, dict):
                return _answer("4001", "Request data format does not match", None)
            return self._route(method, path, query, data, uid)

    def _route(
        self, method: str, path: str, query: dict[str, str], data: dict[str, Any], uid: str
    ) -> Answer:
        if method == "POST" and path == biz_types.NOTICE_URL_CHECK_PATH:
            url = data.get("noticeUrl")
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                return _answer("4000", "noticeUrl is illegal", None)
            return _answer("200", "Success", True)  # [I] result shape not documented
        if method == "GET" and path == biz_types.CREDIT_DETAIL_PATH:
            return _answer("200", "Success", {"remainCredit": self.credit, "expiredTime": None})
        if method == "GET" and path == biz_types.UPLOAD_CREDENTIAL_PATH:
            return self._credential(query.get("format", ""))
        if method == "GET" and path == biz_types.UPLOAD_CHECK_PATH:
            uploaded = self.uploads.get(query.get("fileId", "")) is not None
            return _answer("200", "Success", uploaded)
        if method == "POST" and path == biz_types.SPECS[BizType.M2V_EXPORT].submit_path:
            return self._export(data, uid)
        if method == "POST":
            for biz_type, spec in biz_types.SPECS.items():
                if spec.submit_path == path and biz_type != BizType.M2V_SCRIPT:
                    if biz_type == BizType.M2V_PREVIEW and not data.get("preview", False):
                        # [I] a non-preview M2V submit: we report it as M2V_SCRIPT.
                        biz_type = BizType.M2V_SCRIPT
                    return self._submit(str(biz_type), data, uid)
        if method == "GET":
            matching = [b for b, s in biz_types.SPECS.items() if s.query_path == path]
            if matching:
                view = self.runner.query(matching, query.get("taskId", ""))
                if view is None:
                    return _answer("4004", "Resource not found", None)
                return _answer("200", "Success", view)
        return 404, {"Content-Type": "application/json"}, b'{"error":"Not Found"}'

    def _submit(self, biz_type: str, data: dict[str, Any], uid: str) -> Answer:
        if self.credit <= 0:
            return _answer("4100", "Credit not enough", None)
        self.credit -= 1
        task = self.runner.submit(biz_type, data, uid)
        answer = {"taskId": task.task_id, "status": "success", "noticeUuid": task.notice_uuid}
        return _answer("200", "Success", answer)

    def _export(self, data: dict[str, Any], uid: str) -> Answer:
        task_id = str(data.get("taskId") or "")
        source = self.runner.find(task_id, (BizType.M2V_PREVIEW, BizType.M2V_SCRIPT))
        if source is None:
            return _answer("4004", "Resource not found", None)
        if source.state(self.runner.clock()) != "success":
            return _answer("4000", "The task is not finished successfully", None)
        export = self.runner.submit(BizType.M2V_EXPORT, data, uid, task_id=task_id)
        return _answer("200", "Success", {"taskId": task_id, "noticeUuid": export.notice_uuid})

    # Uploads, credentials, failures --------------------------------------------------

    def _credential(self, extension: str) -> Answer:
        if extension.lower() not in UPLOAD_FORMATS:
            return _answer("4000", f"Unsupported format {extension!r}", None)
        file_id = uuid_module.uuid4().hex
        self.uploads[file_id] = None
        name = f"{file_id}.{extension.lower()}"
        url = f"{self.base_url}{UPLOAD_PREFIX}{name}?X-Amz-Signature=fake"
        return _answer("200", "Success", {"fileId": file_id, "uploadUrl": url, "fileName": name})

    def _put_upload(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        file_id = path.removeprefix(UPLOAD_PREFIX).split(".", 1)[0]
        if "authorization" in headers:
            # Like S3: a presigned URL plus an Authorization header is two auth schemes.
            return _s3_error(400, "InvalidArgument")
        if file_id not in self.uploads:
            return _s3_error(403, "AccessDenied")
        self.uploads[file_id] = len(body)
        return 200, {}, b""

    def _authorized(self, uid: str, authorization: str) -> bool:
        key = authorization.removeprefix("Bearer ").strip()
        if not uid or not key or not authorization.startswith("Bearer "):
            return False
        return self.accounts is None or self.accounts.get(uid) == key

    def _take_failure(self, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.path in (None, path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None


def _answer(code: str, message: str, result: Any, http_status: int = 200) -> Answer:
    body = json.dumps({"code": code, "message": message, "result": result})
    return http_status, {"Content-Type": "application/json"}, body.encode()


def _s3_error(http_status: int, code: str) -> Answer:
    body = f"<Error><Code>{code}</Code></Error>".encode()
    return http_status, {"Content-Type": "application/xml"}, body


@contextmanager
def mock_topview(base_url: str | None = None, **options: Any) -> Iterator[FakeTopview]:
    """Intercept ``requests`` to Topview with ``responses`` and answer as ``FakeTopview``.

    Tasks run until ``fake.finish(task_id)`` unless ``duration=`` is given; then
    ``fake.deliver_callbacks()`` posts their notices to this project's endpoint in-process.
    Needs the ``testing`` extra (``pip install 'topview-callbacks[testing]'``).
    """
    try:
        # An optional dependency: importing this module must work without it.
        import responses
    except ImportError as exc:
        raise ImportError(MISSING_RESPONSES) from exc

    base = (base_url or topview_settings.api_base_url).rstrip("/")
    fake = FakeTopview(base_url=base, **options)

    def callback(request: Any) -> Answer:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):  # a file object (upload)
            body = body.read()
        return fake.handle(request.method, request.url, dict(request.headers), body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for method in ("GET", "POST", "PUT"):
            rsps.add_callback(method, re.compile(re.escape(base) + r"/.*"), callback=callback)
        yield fake
