"""A ``requests``-based client for Topview's OpenAPI, one per account.

Paths come from ``biz_types`` (the one table of endpoints); the client adds the account's
``noticeUrl`` to submits and records each submitted task, so the polling fallback
(``polling.reconcile``) knows what to ask about.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests
from django.db import transaction
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from topview_callbacks import __version__, biz_types
from topview_callbacks.biz_types import (
    CREDIT_DETAIL_PATH,
    NOTICE_URL_CHECK_PATH,
    UPLOAD_CHECK_PATH,
    UPLOAD_CREDENTIAL_PATH,
    BizType,
)
from topview_callbacks.conf import Account, topview_settings
from topview_callbacks.exceptions import TopviewAPIError, TopviewConnectionError, TopviewError
from topview_callbacks.models import SubmittedTask

logger = logging.getLogger(__name__)

__all__ = ["NOTICE_URL_CHECK_PATH", "TopviewClient", "UploadedFile"]

# Fields never stored with a task: credentials someone might pass as a parameter.
SECRET_PARAMS = frozenset({"apikey", "api_key", "authorization", "token", "password", "secret"})


class _GetOnlyRetry(Retry):
    """urllib3's Retry for safe requests only: anything but a GET is never sent twice.

    Plain ``Retry`` re-sends any method after a connection error; a submit must not be
    repeated behind the caller's back (it may cost credits), so it fails at once instead.
    """

    def increment(  # type: ignore[override]
        self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any
    ) -> Retry:
        if method is not None and method.upper() not in (self.allowed_methods or ()):
            exhausted = self.new(total=0, connect=0, read=0, status=0, other=0)
            return Retry.increment(exhausted, method, url, *args, **kwargs)
        return super().increment(method, url, *args, **kwargs)


@dataclass(frozen=True)
class UploadedFile:
    """A file uploaded to Topview's storage; pass ``file_id`` to submits (``imageFileId``...)."""

    file_id: str
    file_name: str


_UNSET: Any = object()


class TopviewClient:
    """Calls Topview with the account's ``Topview-Uid`` and ``Authorization: Bearer`` headers.

    Every call has a timeout; Topview's envelope ``{"code", "message", "result"}`` is
    unwrapped and any ``code`` other than ``"200"`` raises ``TopviewAPIError``. GETs are
    retried on connection errors and 429/5xx answers with backoff (``retries``); POSTs never.
    """

    #: Mounted on the session the client creates (a session you pass is used as given).
    retries: Retry = _GetOnlyRetry(
        total=3,
        connect=3,
        read=2,
        status=3,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    #: How often and how far apart ``upload`` asks whether the uploaded file is visible.
    upload_check_attempts = 5
    upload_check_interval = 1.0

    def __init__(
        self,
        account: str | None = None,
        *,
        timeout: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.account: Account = topview_settings.account(account)
        self.base_url = topview_settings.api_base_url
        self.timeout = timeout if timeout is not None else topview_settings.request_timeout
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=self.retries)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self.session.headers.update(
            {
                "Topview-Uid": self.account.uid,
                "Authorization": f"Bearer {self.account.api_key}",
                "User-Agent": f"topview-callbacks/{__version__}",
                "Accept": "application/json",
            }
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and return the envelope's ``result``."""
        url = f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise TopviewConnectionError(
                f"Topview did not answer {method} {path} within {self.timeout:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise TopviewConnectionError(f"Could not reach Topview at {url}: {exc}") from exc
        return self._unwrap(response, path)

    @staticmethod
    def _unwrap(response: requests.Response, path: str) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            raise TopviewAPIError(
                f"{path} answered HTTP {response.status_code} without Topview's JSON envelope",
                code=str(response.status_code),
                http_status=response.status_code,
            )
        code = str(body.get("code"))
        if code != "200" or not response.ok:
            raise TopviewAPIError(
                str(body.get("message") or f"{path} failed"),
                code=code,
                http_status=response.status_code,
            )
        return body.get("result")

    def check_notice_url(self, url: str | None = None) -> Any:
        """Ask Topview whether it accepts ``url`` (default: NOTICE_URL) as a noticeUrl.

        Returns Topview's ``result`` on acceptance; raises ``TopviewAPIError`` on refusal.
        """
        return self.request(
            "POST", NOTICE_URL_CHECK_PATH, json={"noticeUrl": url or self.account.notice_url}
        )

    # Tasks ---------------------------------------------------------------------------

    def submit(
        self, biz_type: str, *, notice_url: str | None = _UNSET, **params: Any
    ) -> SubmittedTask:
        """Submit a task of ``biz_type`` with ``params`` (Topview's field names) and record it.

        ``noticeUrl`` is the account's NOTICE_URL unless ``notice_url`` is given; pass
        ``notice_url=None`` to submit without a callback (polling then finds the outcome).
        Returns the recorded ``SubmittedTask``. Never retried: on a connection error the
        task may or may not exist at Topview, so this raises ``TopviewConnectionError``.
        """
        spec = biz_types.spec_for(biz_type)
        if spec is None:
            raise TopviewError(
                f"Unknown bizType {biz_type!r}: the client knows no submit endpoint for it. "
                f"Known: {', '.join(biz_types.SPECS)}."
            )
        if not spec.submittable:
            raise TopviewError(
                f"{biz_type} cannot be submitted: Topview documents no endpoint for it "
                "(it names a stage of an avatar marketing video task). Submit 'M2V_PREVIEW' "
                "instead; notices Topview sends as M2V_SCRIPT are still received and sent "
                "on the m2v_script signal."
            )
        if spec.uncertain:
            logger.info("Submitting %s to %s (an inferred endpoint)", biz_type, spec.submit_path)
        body = {**dict(spec.submit_defaults), **params}
        body = self._with_notice_url(body, notice_url)
        result = self.request("POST", spec.submit_path, json=body)
        task_id = result.get("taskId") if isinstance(result, dict) else None
        if not task_id:
            raise TopviewAPIError(
                f"{spec.submit_path} answered success without a taskId: {result!r}",
                code="200",
                http_status=200,
            )
        return self._record_task(biz_type, str(task_id), result, body)

    def export_m2v(
        self, task_id: str, script_id: int = 0, *, notice_url: str | None = _UNSET
    ) -> SubmittedTask:
        """Export script ``script_id`` of a finished M2V task; records an M2V_EXPORT task.

        The export has its own ``noticeUrl`` (Topview does not reuse the submit's). One
        export per M2V task is tracked: a second export of the same task shares its row.
        """
        spec = biz_types.SPECS[BizType.M2V_EXPORT]
        body = self._with_notice_url({"taskId": task_id, "scriptId": script_id}, notice_url)
        result = self.request("POST", spec.submit_path, json=body)
        # Whether the export answers with a new taskId is not documented; the callback and
        # the query use the M2V task id, so that is the id we keep unless told otherwise.
        answered = result.get("taskId") if isinstance(result, dict) else None
        return self._record_task(BizType.M2V_EXPORT, str(answered or task_id), result, body)

    def query(self, biz_type: str, task_id: str, *, cloudfront: bool = False) -> Any:
        """The query-task ``result`` of ``task_id`` (a GET, so transient failures are retried)."""
        spec = biz_types.spec_for(biz_type)
        if spec is None:
            raise TopviewError(f"Unknown bizType {biz_type!r}: no query endpoint is known.")
        params = {"taskId": task_id, "needCloudFrontUrl": "true" if cloudfront else "false"}
        return self.request("GET", spec.query_path, params=params)

    def credit(self) -> Any:
        """The account's credit (``remainCredit``, ``expiredTime``, ...)."""
        return self.request("GET", CREDIT_DETAIL_PATH)

    # Uploads -------------------------------------------------------------------------

    def upload(
        self, path_or_file: str | os.PathLike[str] | IO[bytes], *, file_format: str | None = None
    ) -> UploadedFile:
        """Upload a local file in Topview's three steps; returns the ``fileId`` to submit.

        1. ask for a credential (a presigned URL), 2. PUT the bytes there without Topview's
        headers (the URL carries its own signature), 3. ask until Topview sees the file.
        """
        if isinstance(path_or_file, (str, os.PathLike)):
            path = Path(path_or_file)
            with path.open("rb") as handle:
                return self._upload(handle, path.name, file_format)
        name = str(getattr(path_or_file, "name", "") or "")
        return self._upload(path_or_file, os.path.basename(name), file_format)

    def _upload(self, handle: IO[bytes], name: str, file_format: str | None) -> UploadedFile:
        extension = (file_format or Path(name).suffix.lstrip(".")).lower()
        if not extension:
            raise TopviewError("Give file_format= (e.g. 'mp4'): the file has no extension.")
        credential = self.request("GET", UPLOAD_CREDENTIAL_PATH, params={"format": extension})
        if not isinstance(credential, dict) or not credential.get("uploadUrl"):
            raise TopviewAPIError(
                f"The upload credential has no uploadUrl: {credential!r}", code="200"
            )
        content_type = mimetypes.guess_type(f"x.{extension}")[0] or "application/octet-stream"
        try:
            # None removes the session's Topview headers: S3 refuses a second auth scheme.
            response = self.session.put(
                credential["uploadUrl"],
                data=handle,
                headers={
                    "Topview-Uid": None,
                    "Authorization": None,
                    "Accept": None,
                    "Content-Type": content_type,
                },
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise TopviewConnectionError(
                f"The upload of {name or 'the file'} failed: {exc}"
            ) from exc
        if not response.ok:
            raise TopviewAPIError(
                f"The storage refused the upload: {response.text[:200]}",
                code=str(response.status_code),
                http_status=response.status_code,
            )
        file_id = str(credential.get("fileId") or "")
        for attempt in range(self.upload_check_attempts):
            if self.request("GET", UPLOAD_CHECK_PATH, params={"fileId": file_id}) is True:
                return UploadedFile(file_id, str(credential.get("fileName") or name))
            if attempt + 1 < self.upload_check_attempts:
                time.sleep(self.upload_check_interval)
        raise TopviewError(
            f"Topview does not see uploaded file {file_id} after "
            f"{self.upload_check_attempts} checks; try the check again later."
        )

    # Helpers -------------------------------------------------------------------------

    def _with_notice_url(self, body: dict[str, Any], notice_url: str | None) -> dict[str, Any]:
        url = self.account.notice_url if notice_url is _UNSET else notice_url
        if url:
            return {**body, "noticeUrl": url}
        return {key: value for key, value in body.items() if key != "noticeUrl"}

    def _record_task(
        self, biz_type: str, task_id: str, result: dict[str, Any], body: dict[str, Any]
    ) -> SubmittedTask:
        now = timezone.now()
        values: dict[str, Any] = {
            "account": self.account.name,
            "notice_uuid": str(result.get("noticeUuid") or ""),
            "request_payload": _without_secrets(body),
            "submitted_at": now,
            "next_poll_at": now + topview_settings.poll_after(biz_type),
        }
        with transaction.atomic():
            # The callback can beat us here (a fast task): then the row exists, made by
            # processing, and may already be final; keep its outcome, add what we know.
            task, created = SubmittedTask.objects.select_for_update().get_or_create(
                biz_type=biz_type, task_id=task_id, defaults=values
            )
            if not created:
                task.account = values["account"]
                task.notice_uuid = task.notice_uuid or values["notice_uuid"]
                task.request_payload = values["request_payload"]
                fields = ["account", "notice_uuid", "request_payload", "updated_at"]
                if not task.is_final:
                    task.next_poll_at = values["next_poll_at"]
                    fields.append("next_poll_at")
                task.save(update_fields=fields)
        return task


def _without_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """The request as stored on the task: no credentials, and no path token in noticeUrl."""
    clean = {k: v for k, v in body.items() if k.lower() not in SECRET_PARAMS}
    url = clean.get("noticeUrl")
    if isinstance(url, str):
        for token in topview_settings.all_notice_tokens:
            url = url.replace(token, "<token>")
        clean["noticeUrl"] = url
    return clean
