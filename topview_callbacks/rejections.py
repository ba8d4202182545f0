"""Rejected deliveries: every non-2xx answer of the endpoint is logged, counted and signalled.

A wrong ``UID`` or path token in settings makes the endpoint refuse every notice; without
this module nothing would say so. The view builds its error answers with ``describe`` (what
was refused and why) and hands every answer to ``record``, which for a non-2xx one:

- logs one WARNING naming the reason, the remote address, the account if known and the
  notice's uuid if readable, never a secret (no token, no UID, no header, no path);
- counts it in ``RejectedDelivery``, one row per minute, reason and address (bounded);
- sends ``signals.notice_rejected`` (the metrics count it from there).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from http import HTTPStatus

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase

from topview_callbacks import lifecycle, signals
from topview_callbacks.auth import (
    IPAddress,
    account_for_uid,
    address_is_allowed,
    sender_address,
    token_is_valid,
)
from topview_callbacks.conf import Account, topview_settings
from topview_callbacks.models import Notice, RejectedDelivery

logger = logging.getLogger(__name__)

#: Refusals of a request that carried one of this site's credentials and failed another: a
#: settings mistake that loses Topview's results (or a leaked credential), never a stranger's
#: guess. ``topview_health`` makes them critical. The UID is not a secret, so someone who
#: learned it can still cause a ``wrong_token_known_uid``; the health summary says so.
MISCONFIGURATION_REASONS = (
    "wrong_uid_known_sender",  # a valid path token (or an allowed address), an unknown UID
    "wrong_token_known_uid",  # this site's UID, a wrong or missing path token
    "address_not_allowed",  # the UID and the token right, the address not in ALLOWED_IPS
)
#: Refusals of requests that carried none of this site's credentials: scanners, guesses,
#: someone's test by hand. They only count towards ``REJECTIONS_WARNING``.
STRAY_REASONS = ("wrong_uid", "missing_uid", "wrong_token", "missing_token", "not_found")
#: The reason of an error answer built without one, by its status.
REASONS_BY_STATUS = {
    400: "invalid",
    403: "forbidden",
    405: "method_not_allowed",
    413: "too_large",
    500: "internal_error",
    503: "unavailable",
}
#: A rejected body is read for its uuid only up to this size (notices are about 1 KB).
UUID_PEEK_LIMIT = 64 * 1024
_ATTRIBUTE = "_topview_rejection"


@dataclass(frozen=True)
class Rejection:
    """Why one delivery was refused; attached to the error answer by ``describe``."""

    reason: str
    message: str
    uuid: str = ""
    detail: str = ""


def describe(
    response: HttpResponseBase,
    *,
    message: str,
    reason: str | None = None,
    uuid: str | None = None,
    detail: str = "",
) -> HttpResponseBase:
    """Attach why ``response`` refuses the delivery (``reason`` defaults by status)."""
    reason = reason or REASONS_BY_STATUS.get(response.status_code, f"http_{response.status_code}")
    setattr(response, _ATTRIBUTE, Rejection(reason, message, uuid or "", detail))
    return response


def token_reason(token: str | None) -> str:
    """The reason for a refused path token: none given, or one that is not ours."""
    return "missing_token" if token is None else "wrong_token"


def uid_reason(uid: str) -> str:
    """The reason for a refused ``Topview-Uid`` header: none given, or one we don't know."""
    return "wrong_uid" if uid else "missing_uid"


def record(request: HttpRequest, response: HttpResponseBase) -> None:
    """Log, count and signal ``response`` if it refuses the delivery. Never raises."""
    if response.status_code < 300:
        return
    rejection = getattr(response, _ATTRIBUTE, None)
    if not isinstance(rejection, Rejection):  # an answer built elsewhere (DRF, middleware)
        rejection = Rejection(
            REASONS_BY_STATUS.get(response.status_code, f"http_{response.status_code}"),
            HTTPStatus(response.status_code).phrase
            if response.status_code in HTTPStatus._value2member_map_
            else "",
        )
    # The sender as the allow-list sees it (TRUSTED_PROXIES), not a proxy in front of us.
    address = sender_address(
        request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR")
    )
    remote_addr = str(address) if address is not None else ""
    uid = request.headers.get("Topview-Uid", "")
    account = account_for_uid(uid) if uid else None
    account_name = account.name if account is not None else ""
    if rejection.reason in STRAY_REASONS:
        rejection = replace(
            rejection, reason=_credential_reason(rejection.reason, request, account, address)
        )
    uuid = rejection.uuid or _peek_uuid(request)
    logger.warning(
        # The uuid came from the request: repr() shows a newline or an escape code as
        # text instead of writing it into the log (a forged second line, a recoloured one).
        "Topview notice rejected: %s (%s) from %s, account %s, uuid %s: %s%s",
        rejection.reason,
        response.status_code,
        remote_addr or "?",
        account_name or "unknown",
        repr(uuid) if uuid else "unreadable",
        rejection.message,
        f" ({rejection.detail})" if rejection.detail else "",
        extra={
            "topview_rejection_reason": rejection.reason,
            "topview_status": response.status_code,
            "topview_remote_addr": remote_addr,
            "topview_account": account_name,
            "topview_notice_uuid": uuid,
        },
    )
    try:
        RejectedDelivery.objects.count_one(
            reason=rejection.reason,
            status=response.status_code,
            remote_addr=remote_addr[:45],
            account=account_name,
            uuid=uuid,
        )
    except DatabaseError as exc:  # a 503 because the database is down lands here too
        logger.warning("Could not count a rejected Topview delivery: %s", exc)
    lifecycle.send(
        signals.notice_rejected,
        sender=Notice,
        reason=rejection.reason,
        status=response.status_code,
        remote_addr=remote_addr,
        account=account_name or None,
        uuid=uuid or None,
    )


def _credential_reason(
    reason: str, request: HttpRequest, account: Account | None, address: IPAddress | None
) -> str:
    """``reason`` made precise: a wrong UID or token is a misconfiguration only when the
    request's other credential was right (see ``MISCONFIGURATION_REASONS``)."""
    if reason in ("wrong_token", "missing_token") and account is not None:
        return "wrong_token_known_uid"
    if reason == "wrong_uid":
        match = request.resolver_match
        token = match.kwargs.get("token") if match is not None else None
        if token is not None and token_is_valid(token):
            return "wrong_uid_known_sender"
        for candidate in topview_settings.accounts.values():
            if candidate.allowed_ips and address_is_allowed(address, candidate):
                return "wrong_uid_known_sender"
    return reason


def _peek_uuid(request: HttpRequest) -> str:
    """The ``uuid`` of a small JSON body the view has read already, or "" (refused before
    its body was read, too large, or not JSON).

    A refused request's body is never read here: one that declares a length and sends
    nothing would hold the worker until the server kills it.
    """
    body_read = getattr(request, "_body", None)  # Django's cache of ``request.body``
    if not isinstance(body_read, bytes) or len(body_read) > UUID_PEEK_LIMIT:
        return ""
    try:
        body = json.loads(body_read)
    except Exception:  # unreadable is an answer here: the uuid is only "if readable"
        return ""
    uuid = body.get("uuid") if isinstance(body, dict) else None
    return uuid if isinstance(uuid, str) and 0 < len(uuid) <= 128 else ""
