"""The remaining Topview credit of each account, cached so that the dashboard and
``topview_health`` (its ``CREDIT_WARNING``) ask rarely."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests
from django.core.cache import cache

from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings

logger = logging.getLogger(__name__)

#: The dashboard waits at most this long for Topview (the page must stay fast).
CREDIT_TIMEOUT = 3.0
#: A failed answer is kept this long, so a down API does not slow every page view.
FAILURE_CACHE_SECONDS = 60
#: A good answer is kept this long: the credit moves with submissions, not by the second.
CACHE_SECONDS = 300


@dataclass(frozen=True)
class Credit:
    account: str
    remaining: float | None
    error: str = ""


def credits() -> list[Credit]:
    """One ``Credit`` per account with an API key: its remaining credit, or why it is unknown."""
    return [
        _cached(name)
        for name, account in sorted(topview_settings.accounts.items())
        if account.api_key
    ]


def _cached(account: str) -> Credit:
    key = f"topview_callbacks:credit:{account}"
    found = cache.get(key)
    if isinstance(found, Credit):
        return found
    try:
        # A plain session: one try, no retries with backoff while the page waits.
        client = TopviewClient(account, timeout=CREDIT_TIMEOUT, session=requests.Session())
        answer = client.credit()
        credit = Credit(account, float(answer["remainCredit"]))
        seconds = CACHE_SECONDS
    except Exception as exc:  # shown on the page: the dashboard must not fail with Topview
        logger.warning("Could not read the Topview credit of account %r: %s", account, exc)
        credit = Credit(account, None, f"{type(exc).__name__}: {exc}"[:300])
        seconds = FAILURE_CACHE_SECONDS
    cache.set(key, credit, seconds)
    return credit
