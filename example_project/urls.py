from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/topview_callbacks/notice/")),
    path("admin/", admin.site.urls),
    path("topview/", include("topview_callbacks.urls")),
]
