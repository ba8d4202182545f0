from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class TopviewCallbacksConfig(AppConfig):
    name = "topview_callbacks"
    verbose_name = _("Topview callbacks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: checks import the models, which need the app registry.
        from django.test.signals import setting_changed

        from topview_callbacks import dispatch, signals
        from topview_callbacks.checks import register_checks
        from topview_callbacks.conf import topview_settings
        from topview_callbacks.models import reset_archive_storage

        register_checks()
        post_migrate.connect(install_functions, sender=self, dispatch_uid="topview_functions")
        setting_changed.connect(reset_archive_storage, dispatch_uid="topview_archive_storage")
        # The queue of submissions: sent after commit, and again as outcomes free slots.
        signals.submissions_queued.connect(
            dispatch.queued_receiver, dispatch_uid="topview_send_queued"
        )
        signals.task_status_changed.connect(
            dispatch.status_receiver, dispatch_uid="topview_send_on_outcome"
        )
        if topview_settings.metrics:
            # Needs the `metrics` extra; check E051 says so when it is missing.
            try:
                from topview_callbacks.metrics import receivers
            except ImportError:
                return
            receivers.connect()


def install_functions(using: str = "default", **kwargs: Any) -> None:
    """After ``migrate``: the PostgreSQL function of the inline path as this code builds it
    (a new version of the package may build another; no migration needed for that)."""
    from topview_callbacks.models import Notice
    from topview_callbacks.processing import functions

    conn = connections[using]
    if conn.vendor == "postgresql" and Notice._meta.db_table in conn.introspection.table_names():
        functions.ensure(conn)
