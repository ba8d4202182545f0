"""Topview's HTTP conventions: the account's headers, timeouts, retries, the envelope."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from topview_callbacks import __version__
from topview_callbacks.conf import Account, topview_settings
from topview_callbacks.exceptions import TopviewAPIError, TopviewConnectionError


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


class TopviewSession:
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
