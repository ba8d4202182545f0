"""The ``TOPVIEW_CALLBACKS`` settings dict, read on every access.

Every property re-reads ``django.conf.settings`` so that ``override_settings`` works
without any cache to reset. Nothing else in the package reads the dict directly.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from topview_callbacks.exceptions import TopviewConfigurationError

SETTINGS_NAME = "TOPVIEW_CALLBACKS"
DEFAULT_ACCOUNT = "default"
PROCESSING_MODES = ("inline", "celery", "manual")

#: Every key, its default and what it means (the README's settings table mirrors this).
DEFAULTS: dict[str, Any] = {
    # Credentials of the default account ("API Settings" in the Topview web app).
    "UID": "",
    "API_KEY": "",
    # Public URL of this site's notice endpoint; added to every submit as noticeUrl.
    "NOTICE_URL": "",
    "API_BASE_URL": "https://api.topview.ai",
    # More accounts: {"name": {"UID": ..., "API_KEY": ..., "NOTICE_URL": ...}}.
    "ACCOUNTS": {},
    # Secret path tokens; when non-empty, notices must arrive at notice/<token>/.
    "NOTICE_TOKENS": [],
    # Request bodies larger than this many bytes are refused with 413.
    "MAX_BODY_SIZE": 2 * 1024 * 1024,
    # "inline": process after commit in the request; "celery": enqueue a Celery task;
    # "manual": only store (run `manage.py topview_process_pending` or the Celery sweep).
    "PROCESSING": "inline",
    # Seconds before a call to Topview's API gives up.
    "REQUEST_TIMEOUT": 30.0,
}


@dataclass(frozen=True)
class Account:
    """One Topview account: the credentials that sign our calls and identify its notices."""

    name: str
    uid: str
    api_key: str
    notice_url: str


class TopviewSettings:
    """Typed, always-fresh view of ``settings.TOPVIEW_CALLBACKS``."""

    @property
    def raw(self) -> dict[str, Any]:
        value = getattr(django_settings, SETTINGS_NAME, {})
        return value if isinstance(value, dict) else {}

    def _get(self, key: str) -> Any:
        return self.raw.get(key, DEFAULTS[key])

    @property
    def uid(self) -> str:
        return str(self._get("UID") or "")

    @property
    def api_key(self) -> str:
        return str(self._get("API_KEY") or "")

    @property
    def notice_url(self) -> str:
        return str(self._get("NOTICE_URL") or "")

    @property
    def api_base_url(self) -> str:
        return str(self._get("API_BASE_URL") or DEFAULTS["API_BASE_URL"]).rstrip("/")

    @property
    def notice_tokens(self) -> list[str]:
        tokens = self._get("NOTICE_TOKENS") or []
        return [str(token) for token in tokens]

    @property
    def max_body_size(self) -> int:
        return int(self._get("MAX_BODY_SIZE"))

    @property
    def processing(self) -> str:
        return str(self._get("PROCESSING"))

    @property
    def request_timeout(self) -> float:
        return float(self._get("REQUEST_TIMEOUT"))

    @property
    def accounts(self) -> dict[str, Account]:
        """All configured accounts by name; the flat keys make the ``default`` one."""
        found: dict[str, Account] = {}
        if self.uid:
            found[DEFAULT_ACCOUNT] = Account(
                DEFAULT_ACCOUNT, self.uid, self.api_key, self.notice_url
            )
        extra = self._get("ACCOUNTS")
        for name, values in (extra if isinstance(extra, dict) else {}).items():
            if not isinstance(values, dict):
                continue
            found[str(name)] = Account(
                name=str(name),
                uid=str(values.get("UID") or ""),
                api_key=str(values.get("API_KEY") or ""),
                notice_url=str(values.get("NOTICE_URL") or self.notice_url),
            )
        return found

    def account(self, name: str | None = None) -> Account:
        """The named account (the default one when ``name`` is None), or a clear error."""
        name = name or DEFAULT_ACCOUNT
        try:
            return self.accounts[name]
        except KeyError:
            if name == DEFAULT_ACCOUNT:
                message = (
                    f"Set {SETTINGS_NAME}['UID'] (and 'API_KEY') to your Topview credentials, "
                    "from 'API Settings' in the Topview web app."
                )
            else:
                message = (
                    f"Add {name!r} to {SETTINGS_NAME}['ACCOUNTS'] with its 'UID' and 'API_KEY'."
                )
            raise TopviewConfigurationError(message) from None

    def account_for_uid(self, uid: str) -> Account | None:
        """The account whose UID equals ``uid``, compared in constant time."""
        match = None
        for account in self.accounts.values():
            # No early exit, so the time taken does not tell which account matched.
            if account.uid and hmac.compare_digest(account.uid.encode(), uid.encode()):
                match = match or account
        return match

    def token_is_valid(self, token: str | None) -> bool:
        """Whether ``token`` is one of NOTICE_TOKENS (always true when none are configured)."""
        tokens = self.notice_tokens
        if not tokens:
            return token is None
        if token is None:
            return False
        valid = False
        for candidate in tokens:
            valid |= hmac.compare_digest(candidate.encode(), token.encode())
        return valid


topview_settings = TopviewSettings()
