"""Who we are to Topview and who may deliver to us: credentials, accounts, endpoint guards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topview_callbacks.conf.base import SETTINGS_NAME, SettingsReader, strings
from topview_callbacks.exceptions import TopviewConfigurationError

DEFAULT_ACCOUNT = "default"

DEFAULTS: dict[str, Any] = {
    # Credentials of the default account ("API Settings" in the Topview web app).
    "UID": "",
    "API_KEY": "",
    # Public URL of this site's notice endpoint; added to every submit as noticeUrl.
    "NOTICE_URL": "",
    "API_BASE_URL": "https://api.topview.ai",
    # More accounts: {"name": {"UID": ..., "API_KEY": ..., "NOTICE_URL": ...}}.
    "ACCOUNTS": {},
    # Secret path tokens of the default account; when non-empty, its notices must arrive at
    # notice/<token>/. Each account in ACCOUNTS has its own (ACCOUNTS[name]["NOTICE_TOKENS"]):
    # one account's token never opens another's notices.
    "NOTICE_TOKENS": [],
    # Addresses or CIDR networks allowed to deliver the default account's notices; [] allows
    # any address. Each account in ACCOUNTS has its own (ACCOUNTS[name]["ALLOWED_IPS"]).
    # See TRUSTED_PROXIES.
    "ALLOWED_IPS": [],
    # Addresses or CIDR networks of your own reverse proxies. X-Forwarded-For is read only
    # when the direct peer is one of them, and then its right-most address that is not a
    # trusted proxy is the sender. [] (the default): X-Forwarded-For is never trusted.
    "TRUSTED_PROXIES": [],
    # Request bodies larger than this many bytes are refused with 413.
    "MAX_BODY_SIZE": 2 * 1024 * 1024,
    # Seconds before a call to Topview's API gives up.
    "REQUEST_TIMEOUT": 30.0,
    # The most tasks of an account that `enqueue` keeps sent and unfinished at Topview at
    # once; the rest wait queued. Topview publishes no number (past its limit a submit
    # answers 4007); 10 keeps a queue draining without meeting it on the plans seen so far.
    # Per account: ACCOUNTS[name]["MAX_UNFINISHED"].
    "MAX_UNFINISHED": 10,
}


@dataclass(frozen=True)
class Account:
    """One Topview account: the credentials that sign our calls and identify its notices."""

    name: str
    uid: str
    api_key: str
    notice_url: str
    #: Path tokens this account's notices may use: its own only (the flat NOTICE_TOKENS are
    #: the default account's).
    notice_tokens: tuple[str, ...] = ()
    #: Addresses or networks it may deliver from: its own only (the flat ALLOWED_IPS are
    #: the default account's).
    allowed_ips: tuple[str, ...] = ()
    #: How many of its tasks the queue keeps unfinished at Topview at once (MAX_UNFINISHED).
    max_unfinished: int = 10


class AccountSettings(SettingsReader):
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
    def request_timeout(self) -> float:
        return float(self._get("REQUEST_TIMEOUT"))

    @property
    def notice_tokens(self) -> list[str]:
        """The flat NOTICE_TOKENS: the default account's (``Account.notice_tokens``)."""
        return strings(self._get("NOTICE_TOKENS"))

    @property
    def all_notice_tokens(self) -> list[str]:
        """Every path token of every account, the flat ones included (for redaction)."""
        found = dict.fromkeys(self.notice_tokens)
        for account in self.accounts.values():
            found.update(dict.fromkeys(account.notice_tokens))
        return list(found)

    @property
    def allowed_ips(self) -> list[str]:
        """The flat ALLOWED_IPS: the default account's (``Account.allowed_ips``)."""
        return strings(self._get("ALLOWED_IPS"))

    @property
    def trusted_proxies(self) -> list[str]:
        return strings(self._get("TRUSTED_PROXIES"))

    @property
    def max_body_size(self) -> int:
        return int(self._get("MAX_BODY_SIZE"))

    @property
    def max_unfinished(self) -> int:
        """The flat MAX_UNFINISHED: the default account's, and any account's without one."""
        return _count(self._get("MAX_UNFINISHED"), DEFAULTS["MAX_UNFINISHED"])

    @property
    def accounts(self) -> dict[str, Account]:
        """All configured accounts by name; the flat keys make the ``default`` one."""
        return self.derived("accounts", self._accounts)

    def _accounts(self) -> dict[str, Account]:
        found: dict[str, Account] = {}
        if self.uid:
            found[DEFAULT_ACCOUNT] = Account(
                DEFAULT_ACCOUNT,
                self.uid,
                self.api_key,
                self.notice_url,
                tuple(self.notice_tokens),
                tuple(self.allowed_ips),
                self.max_unfinished,
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
                notice_tokens=tuple(strings(values.get("NOTICE_TOKENS"))),
                allowed_ips=tuple(strings(values.get("ALLOWED_IPS"))),
                max_unfinished=_count(values.get("MAX_UNFINISHED"), self.max_unfinished),
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


def _count(value: Any, default: int) -> int:
    """A count setting; a malformed one falls back to ``default`` (check E080 reports it)."""
    if value is None:
        return default
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default
