"""A ``requests``-based client for Topview's OpenAPI, one per account."""

from __future__ import annotations

from typing import Any

import requests

from topview_callbacks import __version__
from topview_callbacks.conf import Account, topview_settings
from topview_callbacks.exceptions import TopviewAPIError, TopviewConnectionError

NOTICE_URL_CHECK_PATH = "/notice/notice_url/check"


class TopviewClient:
    """Calls Topview with the account's ``Topview-Uid`` and ``Authorization: Bearer`` headers.

    Every call has a timeout; Topview's envelope ``{"code", "message", "result"}`` is
    unwrapped and any ``code`` other than ``"200"`` raises ``TopviewAPIError``.
    """

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
        self.session = session or requests.Session()
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
