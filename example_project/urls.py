from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/topview_callbacks/notice/")),
    path("admin/", admin.site.urls),
    path("topview/", include("topview_callbacks.urls")),
]
# The archived files, for the admin's links and previews (runserver, DEBUG only: a real
# site serves MEDIA_ROOT from its web server or a storage's own URLs).
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
