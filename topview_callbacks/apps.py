from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TopviewCallbacksConfig(AppConfig):
    name = "topview_callbacks"
    verbose_name = _("Topview callbacks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from topview_callbacks import checks  # noqa: F401  (registers the system checks)
