"""Who may deliver a notice: the ``Topview-Uid`` header and the secret path token.

Both are compared in constant time and without an early exit, so the time an answer takes
does not tell how much of a guess was right, nor which account matched.
"""

from __future__ import annotations

import hmac

from topview_callbacks.conf import Account, topview_settings


def _same(secret: str, guess: str) -> bool:
    return hmac.compare_digest(secret.encode(), guess.encode())


def account_for_uid(uid: str) -> Account | None:
    """The account whose UID equals ``uid``, or None."""
    match = None
    for account in topview_settings.accounts.values():
        if account.uid and _same(account.uid, uid):
            match = match or account
    return match


def token_is_valid(token: str | None) -> bool:
    """Whether ``token`` is one of NOTICE_TOKENS; without any, only the token-less URL is."""
    tokens = topview_settings.notice_tokens
    if not tokens:
        return token is None
    if token is None:
        return False
    valid = False
    for candidate in tokens:
        valid |= _same(candidate, token)
    return valid
