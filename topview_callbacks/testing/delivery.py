"""Delivering a notice the way Topview does: in-process (``deliver_notice``) or over HTTP.

Both send the headers Topview sends: ``Topview-Uid`` (by default the configured UID) and a
JSON content type.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from django.db import connections, router
from django.test import Client, TestCase
from django.urls import reverse

from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice


def deliver_notice(
    payload: dict[str, Any] | str | bytes,
    *,
    client: Client | None = None,
    uid: str | None = None,
    path: str | None = None,
    run_on_commit: bool = True,
) -> Any:
    """POST a notice to this project's endpoint in-process (Django's test client).

    ``path``: by default the route Topview would use with your settings: the token route
    (``notice/<token>/``) when ``NOTICE_TOKENS`` apply to the account of ``uid``, else
    ``notice/``. ``run_on_commit``: run the ``transaction.on_commit()`` callbacks the
    request queued (inline processing, your receivers' side effects) before returning, as
    the request's commit would outside a test's transaction. They run once: an enclosing
    ``django_capture_on_commit_callbacks(execute=True)`` does not run them again.
    """
    uid = uid if uid is not None else topview_settings.uid
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    post = (client or Client()).post
    arguments: dict[str, Any] = {
        "data": body,
        "content_type": "application/json",
        "headers": {"Topview-Uid": uid},
    }
    url = path or notice_path(uid)
    if not run_on_commit:
        return post(url, **arguments)
    using = router.db_for_write(Notice)
    queued = connections[using].run_on_commit
    start = len(queued)
    with TestCase.captureOnCommitCallbacks(using=using, execute=True):
        response = post(url, **arguments)
    # They ran, as at a commit: forgotten, so that the test's own commit (or capture) does
    # not run them a second time.
    del queued[start:]
    return response


def notice_path(uid: str | None = None) -> str:
    """The path Topview would deliver to for the account of ``uid`` (default: ``UID``):
    the token route with its first path token when ``NOTICE_TOKENS`` apply to it."""
    uid = uid if uid is not None else topview_settings.uid
    accounts = topview_settings.accounts
    account = next((a for a in accounts.values() if a.uid == uid), accounts.get("default"))
    tokens = account.notice_tokens if account else tuple(topview_settings.notice_tokens)
    if tokens:
        return reverse("topview_callbacks:notice-with-token", args=[tokens[0]])
    return reverse("topview_callbacks:notice")


def send_notice_over_http(
    url: str,
    payload: dict[str, Any],
    *,
    uid: str | None = None,
    timeout: float = 10.0,
    session: requests.Session | None = None,
) -> requests.Response:
    """POST a notice over real HTTP, with the headers Topview sends.

    ``session``: send through this ``requests.Session`` (to reuse its connections).
    """
    post = session.post if session is not None else requests.post
    return post(
        url,
        data=json.dumps(payload),
        headers={
            "Topview-Uid": uid if uid is not None else topview_settings.uid,
            "Content-Type": "application/json",
        },
        timeout=timeout,
    )
