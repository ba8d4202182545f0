"""A fake Topview for tests and demos, with no account and no internet.

``FakeTopview`` holds the state (tasks, uploads, credit) and answers requests the way the
documented API does; its tasks and their callbacks run in ``FakeTaskRunner``
(``fake_tasks``). Two transports put it in front of your code:

- ``mock_topview()`` (here): ``responses`` intercepts ``requests`` to ``API_BASE_URL``
  in-process, for unit tests. Callbacks are delivered when you ask (``deliver_callbacks()``).
- ``FakeTopviewServer`` (``fake_server``): a real HTTP server on 127.0.0.1 that runs tasks on
  timers and POSTs callbacks to their ``noticeUrl``, and can drop, duplicate, delay and
  reorder them (``manage.py topview_fake_server``).

Re-exported by ``topview_callbacks.testing``. Where the real API is not documented (the
check's ``result``, submit answers beyond ``taskId``/``noticeUuid``) the fake's choice is
marked [I], as in topview-api.md.
"""

from __future__ import annotations

import json
import re
import time
import uuid as uuid_module
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from topview_callbacks import biz_types
from topview_callbacks.biz_types import BizType
from topview_callbacks.fake_tasks import FakeTaskRunner

UPLOAD_PREFIX = "/_fake_upload/"
UPLOAD_FORMATS = frozenset({"mp4", "mov", "png", "jpg", "jpeg", "bmp", "webp", "mp3", "wav", "m4a"})


@dataclass
class _Failure:
    path: str | None
    code: str
    http_status: int
    message: str
    body: str | None
    times: int


class FakeTopview(FakeTaskRunner):
    """Topview's API as a state machine; thread-safe, transport-free (see ``handle``).

    ``duration``: (min, max) seconds a task runs, or None to run until ``finish()``.
    ``fail_rate``: share of tasks that fail. ``drop``/``duplicate``: share of callbacks
    never sent / sent twice. ``delay``: (min, max) seconds between a task's end and each
    callback POST. ``reorder``: callbacks due together leave in random order.
    ``accounts``: {uid: api_key} that may call; None accepts any non-empty pair.
    """

    def __init__(
        self,
        *,
        accounts: dict[str, str] | None = None,
        duration: tuple[float, float] | None = None,
        fail_rate: float = 0.0,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
        reorder: bool = False,
        credit: float = 10_000.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        base_url: str = "",
    ) -> None:
        super().__init__(
            duration=duration,
            fail_rate=fail_rate,
            drop=drop,
            duplicate=duplicate,
            delay=delay,
            reorder=reorder,
            seed=seed,
            clock=clock,
        )
        self.accounts = accounts
        self.credit = credit
        self.base_url = base_url.rstrip("/")
        self.uploads: dict[str, int | None] = {}  # fileId -> size once PUT
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API call
        self._failures: list[_Failure] = []

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

    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
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
                return self._answer(failure.code, failure.message, None, failure.http_status)
            uid = lower.get("topview-uid", "")
            if not self._authorized(uid, lower.get("authorization", "")):
                return self._answer("401", "Unauthorized, need to log in again", None)
            try:
                data = json.loads(body or b"{}") if method == "POST" else {}
            except ValueError:
                return self._answer("4001", "Request data format does not match", None)
            if not isinstance(data, dict):
                return self._answer("4001", "Request data format does not match", None)
            return self._route(method, path, query, data, uid)

    def _route(
        self, method: str, path: str, query: dict[str, str], data: dict[str, Any], uid: str
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST" and path == biz_types.NOTICE_URL_CHECK_PATH:
            url = data.get("noticeUrl")
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                return self._answer("4000", "noticeUrl is illegal", None)
            return self._answer("200", "Success", True)  # [I] result shape not documented
        if method == "GET" and path == biz_types.CREDIT_DETAIL_PATH:
            return self._answer(
                "200", "Success", {"remainCredit": self.credit, "expiredTime": None}
            )
        if method == "GET" and path == biz_types.UPLOAD_CREDENTIAL_PATH:
            return self._credential(query.get("format", ""))
        if method == "GET" and path == biz_types.UPLOAD_CHECK_PATH:
            return self._answer(
                "200", "Success", self.uploads.get(query.get("fileId", "")) is not None
            )
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
                return self._query(matching, query.get("taskId", ""))
        return 404, {"Content-Type": "application/json"}, b'{"error":"Not Found"}'

    def _submit(
        self, biz_type: str, data: dict[str, Any], uid: str
    ) -> tuple[int, dict[str, str], bytes]:
        if self.credit <= 0:
            return self._answer("4100", "Credit not enough", None)
        self.credit -= 1
        task_id = uuid_module.uuid4().hex
        task = self._new_task(biz_type, task_id, data, uid)
        answer = {"taskId": task_id, "status": "success", "noticeUuid": task.notice_uuid}
        return self._answer("200", "Success", answer)

    def _export(self, data: dict[str, Any], uid: str) -> tuple[int, dict[str, str], bytes]:
        task_id = str(data.get("taskId") or "")
        source = self.tasks.get((BizType.M2V_PREVIEW, task_id)) or self.tasks.get(
            (BizType.M2V_SCRIPT, task_id)
        )
        if source is None:
            return self._answer("4004", "Resource not found", None)
        if source.state(self.clock()) != "success":
            return self._answer("4000", "The task is not finished successfully", None)
        self._new_task(BizType.M2V_EXPORT, task_id, data, uid)
        key = (BizType.M2V_EXPORT, task_id)
        return self._answer(
            "200", "Success", {"taskId": task_id, "noticeUuid": self.tasks[key].notice_uuid}
        )

    def _query(self, biz_types_here: list[str], task_id: str) -> tuple[int, dict[str, str], bytes]:
        tasks = [self.tasks[(b, task_id)] for b in biz_types_here if (b, task_id) in self.tasks]
        if not tasks:
            return self._answer("4004", "Resource not found", None)
        main = next((t for t in tasks if t.biz_type != BizType.M2V_EXPORT), tasks[0])
        view = self.view(main)
        main.queried = True  # a task run by hand reports "init" once, then "running"
        return self._answer("200", "Success", view)

    # Plumbing ------------------------------------------------------------------------

    def _credential(self, extension: str) -> tuple[int, dict[str, str], bytes]:
        if extension.lower() not in UPLOAD_FORMATS:
            return self._answer("4000", f"Unsupported format {extension!r}", None)
        file_id = uuid_module.uuid4().hex
        self.uploads[file_id] = None
        name = f"{file_id}.{extension.lower()}"
        url = f"{self.base_url}{UPLOAD_PREFIX}{name}?X-Amz-Signature=fake"
        return self._answer(
            "200", "Success", {"fileId": file_id, "uploadUrl": url, "fileName": name}
        )

    def _put_upload(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        file_id = path.removeprefix(UPLOAD_PREFIX).split(".", 1)[0]
        if "authorization" in headers:
            # Like S3: a presigned URL plus an Authorization header is two auth schemes.
            return (
                400,
                {"Content-Type": "application/xml"},
                b"<Error><Code>InvalidArgument</Code></Error>",
            )
        if file_id not in self.uploads:
            return (
                403,
                {"Content-Type": "application/xml"},
                b"<Error><Code>AccessDenied</Code></Error>",
            )
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

    @staticmethod
    def _answer(
        code: str, message: str, result: Any, http_status: int = 200
    ) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({"code": code, "message": message, "result": result})
        return http_status, {"Content-Type": "application/json"}, body.encode()


@contextmanager
def mock_topview(base_url: str | None = None, **options: Any) -> Iterator[FakeTopview]:
    """Intercept ``requests`` to Topview with ``responses`` and answer as ``FakeTopview``.

    Tasks run until ``fake.finish(task_id)`` unless ``duration=`` is given; then
    ``fake.deliver_callbacks()`` posts their notices to this project's endpoint in-process.
    """
    import responses

    from topview_callbacks.conf import topview_settings

    base = (base_url or topview_settings.api_base_url).rstrip("/")
    fake = FakeTopview(base_url=base, **options)

    def callback(request: Any) -> tuple[int, dict[str, str], bytes]:
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
