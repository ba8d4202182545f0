"""The callback endpoint: authenticate, validate, store (and process) once, acknowledge."""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, DataError, IntegrityError, close_old_connections, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from topview_callbacks import dispatch, lifecycle, rejections, sending, signals
from topview_callbacks.auth import (
    account_for_uid,
    address_is_allowed,
    sender_address,
    token_is_valid,
)
from topview_callbacks.conf import topview_settings
from topview_callbacks.contract import acknowledgement, parse_notice
from topview_callbacks.exceptions import NoticeValidationError
from topview_callbacks.models import Notice

logger = logging.getLogger(__name__)

# The only request headers stored with a notice (an allow-list: a proxy's credential header
# with a new name is never stored): what helps to diagnose a delivery. Shown in the admin
# to view-only staff, so the Topview-Uid is masked (MASKED_HEADERS).
STORED_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "topview-uid",
        "traceparent",
        "user-agent",
        "via",
        "x-amzn-trace-id",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-request-id",
    }
)
MASKED_HEADERS = frozenset({"topview-uid"})
MAX_HEADER_LENGTH = 1024
# Where WSGI puts each of them in META, and the name it is stored under (as
# ``request.headers`` spells it): read straight from META, no header mapping is built.
_UNPREFIXED = frozenset({"content-type", "content-length"})  # WSGI's two exceptions
_META_NAMES = {
    ("" if name in _UNPREFIXED else "HTTP_") + name.upper().replace("-", "_"): "-".join(
        part.title() for part in name.split("-")
    )
    for name in STORED_HEADERS
}
UID_META = "HTTP_TOPVIEW_UID"


def stored_headers(request: HttpRequest) -> dict[str, str]:
    """The headers kept with a notice: allow-listed, the UID masked, values truncated."""
    kept = {}
    meta = request.META
    for key, name in _META_NAMES.items():
        value = meta.get(key)
        if value is None:
            continue
        if name.lower() in MASKED_HEADERS:
            value = mask(value)
        kept[name] = value[:MAX_HEADER_LENGTH]
    return kept


def mask(secret: str) -> str:
    """Enough of a value to tell two apart at a glance, not enough to reuse it."""
    return f"{secret[:3]}…" if len(secret) >= 8 else "…"


def envelope(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def error(
    status: int,
    message: str,
    *,
    uuid: str | None = None,
    uid: str | None = None,
    reason: str | None = None,
    detail: str = "",
) -> HttpResponse:
    """The contract's error envelope; ``reason`` (default: by status) says why, for
    ``rejections.record``."""
    response = envelope(
        status,
        acknowledgement(uuid=uuid, topview_uid=uid, ok=False, code=str(status), message=message),
    )
    rejections.describe(response, message=message, reason=reason, uuid=uuid, detail=detail)
    return response


def _submission_marker(request: HttpRequest) -> str:
    """The queued submission's marker in the notice URL's query string ("" when none):
    read only when there is a query string, so other notices pay nothing for it."""
    if not request.META.get("QUERY_STRING"):
        return ""
    return str(request.GET.get(sending.SUBMISSION_PARAM) or "")[:32]


class NoticeView(View):
    """Receives Topview's POSTed notices at ``noticeUrl``.

    A plain Django view: no framework policy of the host (DRF's authentication,
    throttling, renderers) can reach it. The body is read and parsed by hand: the raw bytes
    are kept verbatim, and a malformed body must get the contract's envelope. Every answer,
    an unexpected error's and a wrong method's included, is the contract's envelope.
    """

    # Probes (GET, HEAD) and deliveries (POST); anything else is a 405 in the envelope.
    http_method_names = ["get", "head", "post"]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """Topview never logs in and has no CSRF token: exempt from
        ``LoginRequiredMiddleware`` and the CSRF check; never inside ``ATOMIC_REQUESTS``'
        transaction (the notice must be committed before it is acknowledged)."""
        view = super().as_view(**initkwargs)
        return login_not_required(transaction.non_atomic_requests(csrf_exempt(view)))

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Every answer passes here, whichever branch built it: a refusal is logged once,
        # without the path token or the UID, counted and signalled (rejections.record).
        # Django's request logger, which would print "Forbidden: /topview/notice/<the
        # token>/", is told that it has been logged.
        try:
            response = super().dispatch(request, *args, **kwargs)
        except Exception:
            logger.exception("Unexpected error in the Topview notice endpoint")
            response = error(500, "Internal error; the notice was not stored, please retry.")
        rejections.record(request, response)
        if response.status_code >= 400:
            setattr(response, "_has_been_logged", True)  # noqa: B010 (Django's own flag)
        return response

    def http_method_not_allowed(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        response = error(405, f'Method "{request.method}" not allowed.')
        response["Allow"] = ", ".join(m.upper() for m in self.http_method_names)
        return response

    def get(self, request: HttpRequest, token: str | None = None) -> HttpResponse:
        """Probes (GET/HEAD) learn that the endpoint is here; nothing is stored."""
        if not token_is_valid(token):
            return error(403, "Unknown notice URL token.", reason=rejections.token_reason(token))
        return envelope(200, {"code": "200", "message": "Success", "result": None})

    def post(self, request: HttpRequest, token: str | None = None) -> HttpResponse:
        uid = request.META.get(UID_META, "")
        account = account_for_uid(uid) if uid else None
        # The token is checked against the account's tokens (the global ones and its own),
        # or against every account's when the UID is unknown, so the message stays the same.
        if not token_is_valid(token, account):
            return error(403, "Unknown notice URL token.", reason=rejections.token_reason(token))
        if account is None:
            return error(
                403, "Missing or unknown Topview-Uid header.", reason=rejections.uid_reason(uid)
            )
        address = sender_address(
            request.META.get("REMOTE_ADDR"),
            request.META.get("HTTP_X_FORWARDED_FOR"),
        )
        if not address_is_allowed(address, account):
            return error(
                403,
                "This address may not deliver notices for this account.",
                reason="address_not_allowed",
            )

        limit = topview_settings.max_body_size
        try:
            too_big = int(request.META.get("CONTENT_LENGTH") or 0) > limit
            raw = b"" if too_big else request.body
        except (ValueError, RequestDataTooBig):
            too_big = True
        if too_big or len(raw) > limit:
            return error(413, f"The notice is larger than {limit} bytes.", uid=account.uid)

        try:
            notice = parse_notice(raw)
        except NoticeValidationError as exc:
            return error(exc.status_code, str(exc), uid=account.uid, reason="invalid")

        marker = _submission_marker(request)
        try:
            if marker:
                sending.match_callback(marker, account.name, notice.biz_type, notice.task_id)
            received = dispatch.deliver(
                {
                    "uuid": notice.uuid,
                    "account": account.name,
                    "biz_type": notice.biz_type,
                    "task_id": notice.task_id,
                    "status": notice.status,
                    "error_message": notice.error_message,
                    "result": notice.result,
                    "raw_body": notice.raw_body,
                    "headers": stored_headers(request),
                    "remote_addr": str(address) if address is not None else None,
                }
            )
        except (DataError, IntegrityError) as exc:
            return error(
                400,
                "The notice could not be stored as sent.",
                uuid=notice.uuid,
                uid=account.uid,
                reason="not_storable",
                detail=str(exc),
            )
        except DatabaseError:
            logger.exception("Database unavailable; Topview notice %r not stored", notice.uuid)
            return error(
                503, "The database is unavailable; please retry.", uuid=notice.uuid, uid=account.uid
            )
        if received.repeated:
            logger.info("Duplicate delivery of Topview notice %r", notice.uuid)
            lifecycle.send(
                signals.notice_redelivered, sender=Notice, uuid=notice.uuid, account=account.name
            )
        return envelope(200, acknowledgement(uuid=notice.uuid, topview_uid=account.uid, ok=True))


_notice_view = NoticeView.as_view()


def _notice_in_any_thread(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
    """The endpoint in an executor thread. That thread's connection is checked before and
    after, as Django's request signals do only for the request's own thread: closed (given
    back to the pool) when ``CONN_MAX_AGE`` says so, else kept for the thread's next
    request."""
    close_old_connections()
    try:
        return _notice_view(request, *args, **kwargs)
    finally:
        close_old_connections()


@login_not_required
@transaction.non_atomic_requests
@csrf_exempt
async def async_notice_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
    """The endpoint for ASGI sites (``topview_callbacks.urls_async``): the same synchronous
    view, run in a thread of the event loop's executor, which serves request after request
    (``thread_sensitive=False``), rather than in a new thread for each request as Django
    runs a synchronous view under ASGI. The store, the processing and the receivers stay
    synchronous, in one transaction on that thread's connection."""
    run = sync_to_async(_notice_in_any_thread, thread_sensitive=False)
    return await run(request, *args, **kwargs)
