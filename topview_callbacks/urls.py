"""Routes of the callback endpoint: ``include("topview_callbacks.urls")`` under any prefix.

Each notice route answers with and without its trailing slash: a ``NOTICE_URL`` given to
Topview without the slash would otherwise meet ``APPEND_SLASH``, whose redirect (301, or
a 500 with ``DEBUG`` on) Topview does not follow with a POST, and every callback would be
lost. Reversing the names gives the slashed form. The notice routes' names all start
with "notice" (checks/notice_route.py relies on it).
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path, re_path

from topview_callbacks.metrics.view import metrics
from topview_callbacks.not_found import notice_not_found
from topview_callbacks.views import NoticeView

app_name = "topview_callbacks"


def patterns(notice: Any) -> list[URLPattern]:
    """The routes, with ``notice`` as the endpoint's view (urls_async.py gives its own)."""
    return [
        path("notice/", notice, name="notice"),
        path("notice", notice, name="notice-no-slash"),
        # Used when NOTICE_TOKENS is set: the NOTICE_URL given to Topview ends in one token.
        path("notice/<str:token>/", notice, name="notice-with-token"),
        path("notice/<str:token>", notice, name="notice-with-token-no-slash"),
        # Prometheus' scrape target; 404 unless METRICS is on (see metrics/view.py).
        path("metrics/", metrics, name="metrics"),
        # Keep last. Anything else under notice/ (notice/<token>/extra/, notice/<token>//, or
        # a doubled slash before notice/): the contract's 404, logged without the path, where
        # Django's request logger would print the token (not_found.py). Its name must not
        # start with "notice": it is no route to give Topview.
        re_path(r"^(?:/+notice/.*|notice/[^/]*/.+)$", notice_not_found, name="stray-notice-path"),
    ]


urlpatterns = patterns(NoticeView.as_view())
