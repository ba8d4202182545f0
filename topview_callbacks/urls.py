"""Routes of the callback endpoint: ``include("topview_callbacks.urls")`` under any prefix."""

from __future__ import annotations

from django.urls import path, re_path

from topview_callbacks.metrics.view import metrics
from topview_callbacks.not_found import notice_not_found
from topview_callbacks.views import NoticeView

app_name = "topview_callbacks"

urlpatterns = [
    path("notice/", NoticeView.as_view(), name="notice"),
    # Used when NOTICE_TOKENS is set: the NOTICE_URL given to Topview ends in one token.
    path("notice/<str:token>/", NoticeView.as_view(), name="notice-with-token"),
    # Prometheus' scrape target; 404 unless METRICS is on (see metrics/view.py).
    path("metrics/", metrics, name="metrics"),
    # Keep last. Anything else under notice/ (notice/<token>/extra/, notice/<token>//, or
    # a doubled slash before notice/): the contract's 404, logged without the path, where
    # Django's request logger would print the token (not_found.py). Its name must not
    # start with "notice": it is no route to give Topview.
    re_path(r"^(?:/+notice/.*|notice/[^/]*/.+)$", notice_not_found, name="stray-notice-path"),
]
