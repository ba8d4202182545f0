"""``topview_callbacks:metrics``: the exposition for Prometheus, when ``METRICS`` is on.

Readable with ``Authorization: Bearer <METRICS_TOKEN>`` (what a Prometheus scrape config
sends) or by a logged-in staff user with view permission on notices; 404 while ``METRICS``
is off, 403 to anybody else. prometheus-client is imported only when the view answers.
"""

from __future__ import annotations

import hmac

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from topview_callbacks.conf import topview_settings

VIEW_PERMISSION = "topview_callbacks.view_notice"


def may_read(request: HttpRequest) -> bool:
    """A valid bearer token, or a staff user who may view notices."""
    token = topview_settings.metrics_token
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer "):
        return hmac.compare_digest(given.removeprefix("Bearer ").encode(), token.encode())
    user = request.user
    return bool(user.is_authenticated and user.is_staff and user.has_perm(VIEW_PERMISSION))


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not topview_settings.metrics:
        raise Http404("METRICS is off.")
    if not may_read(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    from topview_callbacks.metrics.exposition import latest

    body, content_type = latest()
    return HttpResponse(body, content_type=content_type)


try:  # Django 5.1+: reachable with LoginRequiredMiddleware; it checks its own access
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover - Django < 5.1
    pass
else:
    metrics = login_not_required(metrics)
