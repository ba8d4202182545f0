"""Delivering a notice the way Topview does: in-process (``deliver_notice``) or over HTTP.

Both send the headers Topview sends: ``Topview-Uid`` (by default the configured UID) and a
JSON content type.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from django.test import Client
from django.urls import reverse

from topview_callbacks.conf import topview_settings


def deliver_notice(
    payload: dict[str, Any] | str | bytes,
    *,
    client: Client | None = None,
    uid: str | None = None,
    path: str | None = None,
) -> Any:
    """POST a notice to this project's endpoint in-process (Django's test client)."""
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return (client or Client()).post(
        path or reverse("topview_callbacks:notice"),
        data=body,
        content_type="application/json",
        headers={"Topview-Uid": uid if uid is not None else topview_settings.uid},
    )


def send_notice(
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
