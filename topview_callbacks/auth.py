"""Who may deliver a notice: the ``Topview-Uid`` header, the secret path token and the
sender's address, each checked per account.

Secrets are compared in constant time and without an early exit, so the time an answer
takes does not tell how much of a guess was right, nor which account matched. The sender's
address is the direct peer, unless that peer is one of ``TRUSTED_PROXIES``: only then is
``X-Forwarded-For`` read, from the right, skipping the trusted proxies.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from topview_callbacks.conf import Account, topview_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _same(secret: str, guess: str) -> bool:
    return hmac.compare_digest(secret.encode(), guess.encode())


def account_for_uid(uid: str) -> Account | None:
    """The account whose UID equals ``uid``, or None."""
    match = None
    for account in topview_settings.accounts.values():
        if account.uid and _same(account.uid, uid):
            match = match or account
    return match


def _accepts_token(tokens: tuple[str, ...] | list[str], token: str | None) -> bool:
    if not tokens:
        return token is None
    if token is None:
        return False
    valid = False
    for candidate in tokens:
        valid |= _same(candidate, token)
    return valid


def token_is_valid(token: str | None, account: Account | None = None) -> bool:
    """Whether ``token`` opens the endpoint for ``account``: one of its own tokens, or no
    token at all when it has none.

    Without ``account``: whether it opens the endpoint for any configured account.
    """
    if account is not None:
        return _accepts_token(account.notice_tokens, token)
    accounts = list(topview_settings.accounts.values())
    if not accounts:
        return _accepts_token(topview_settings.notice_tokens, token)
    valid = False
    for candidate in accounts:  # no early exit: every account is compared
        valid |= _accepts_token(candidate.notice_tokens, token)
    return valid


@lru_cache(maxsize=64)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    # An entry that is not an address or network matches nothing (check E030 reports it):
    # a typo in an allow-list must not open it to everyone.
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def parse_address(value: str | None) -> IPAddress | None:
    """An address as peers and proxies write it (``[::1]:80``, ``1.2.3.4:80`` tolerated)."""
    return _parse_address(value) if value else None


@lru_cache(maxsize=1024)  # a sender's address comes again and again; parsing it is slow
def _parse_address(value: str) -> IPAddress | None:
    text = value.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has more colons
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's ::ffff:1.2.3.4 is 1.2.3.4
    return address


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def sender_address(remote_addr: str | None, forwarded_for: str | None) -> IPAddress | None:
    """The address that sent the request, as far as ``TRUSTED_PROXIES`` lets us know it.

    The direct peer, unless it is a trusted proxy: then the right-most ``X-Forwarded-For``
    entry that is not a trusted proxy (entries further left were written by the client
    itself and prove nothing). None when that entry is not an address.
    """
    peer = parse_address(remote_addr)
    proxies = _networks(tuple(topview_settings.trusted_proxies))
    if peer is None or not proxies or not _within(peer, proxies):
        return peer
    hops = [hop for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None or not _within(address, proxies):
            return address
    return parse_address(hops[0]) if hops else peer


def address_is_allowed(address: IPAddress | None, account: Account) -> bool:
    """Whether ``address`` may deliver ``account``'s notices (any, without an allow-list)."""
    if not account.allowed_ips:
        return True
    return address is not None and _within(address, _networks(account.allowed_ips))
