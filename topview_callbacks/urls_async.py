"""The routes of topview_callbacks.urls with the endpoint's async view, for ASGI sites:
``include("topview_callbacks.urls_async")`` instead of ``topview_callbacks.urls`` (same
paths, same names). Served by WSGI it still works, one thread per request, with an event
loop started for each (Django's ``async_to_sync``): keep ``urls`` there."""

from __future__ import annotations

from topview_callbacks.urls import patterns
from topview_callbacks.views import async_notice_view

app_name = "topview_callbacks"

urlpatterns = patterns(async_notice_view)
