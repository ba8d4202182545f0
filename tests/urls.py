from typing import Any

from django.contrib import admin
from django.urls import include, path


def host_exception_handler(exc: Exception, context: Any) -> Any:
    raise AssertionError("the host project's EXCEPTION_HANDLER must not be used by the endpoint")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("topview/", include("topview_callbacks.urls")),
]
