from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from tests.hostproject import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/greeting/", views.GreetingView.as_view(), name="greeting"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("private/", views.private, name="private"),
    path("topview/", include("topview_callbacks.urls")),
]
