"""tests/urls.py with the endpoint's async routes (topview_callbacks.urls_async)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("topview/", include("topview_callbacks.urls_async")),
]
