"""Paths under the endpoint's ``notice/`` that no route serves: the contract's 404.

Django answers an unrouted path with its own 404 and logs it on ``django.request`` with the
path: ``Not Found: /topview/notice/<the token>/extra/``. These paths are answered here
instead, in the contract's envelope, logged once by ``rejections`` without the path (and so
without the token), counted as ``not_found``, and marked as logged for Django. The body is
never read.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from topview_callbacks import rejections
from topview_callbacks.views import error


@csrf_exempt
@login_not_required
def notice_not_found(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    response = error(404, "Not found.", reason="not_found")
    rejections.record(request, response)
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag
    return response
