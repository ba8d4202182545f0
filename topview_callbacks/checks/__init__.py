"""System checks of the ``TOPVIEW_CALLBACKS`` settings, registered by ``register_checks``.

Ids are stable and never reused; docs/checks.md lists the retired ones.
"""

from __future__ import annotations

from django.core.checks import Tags, register

from topview_callbacks.checks.accounts import check_accounts
from topview_callbacks.checks.archiving import check_archiving, check_archiving_security
from topview_callbacks.checks.base import check_settings_dict
from topview_callbacks.checks.endpoint import check_endpoint
from topview_callbacks.checks.notice_route import check_notice_route
from topview_callbacks.checks.observability import check_metrics_token, check_observability
from topview_callbacks.checks.partitions import check_partition_layout, check_partition_setting
from topview_callbacks.checks.placeholders import check_placeholders
from topview_callbacks.checks.polling import check_polling
from topview_callbacks.checks.pooling import check_pooling
from topview_callbacks.checks.processing import check_processing
from topview_callbacks.checks.replicas import check_read_database
from topview_callbacks.checks.security import check_security
from topview_callbacks.checks.tasks_framework import check_tasks_framework

__all__ = [
    "check_accounts",
    "check_archiving",
    "check_archiving_security",
    "check_endpoint",
    "check_metrics_token",
    "check_notice_route",
    "check_observability",
    "check_partition_layout",
    "check_partition_setting",
    "check_placeholders",
    "check_polling",
    "check_pooling",
    "check_processing",
    "check_read_database",
    "check_security",
    "check_settings_dict",
    "check_tasks_framework",
    "register_checks",
]


def register_checks() -> None:
    """Called once, from ``AppConfig.ready()``."""
    register(check_settings_dict, Tags.compatibility)
    register(check_accounts, Tags.compatibility)
    register(check_endpoint, Tags.compatibility)
    register(check_notice_route, Tags.urls)
    register(check_processing, Tags.compatibility)
    register(check_polling, Tags.compatibility)
    register(check_pooling, Tags.compatibility)
    register(check_read_database, Tags.compatibility)
    register(check_partition_setting, Tags.compatibility)
    register(check_partition_layout, Tags.database)
    register(check_observability, Tags.compatibility)
    register(check_tasks_framework, Tags.compatibility)
    register(check_security, Tags.security)
    register(check_metrics_token, Tags.security)
    # Only with --deploy: a development site runs on the placeholders on purpose.
    register(check_placeholders, Tags.security, deploy=True)
    register(check_archiving, Tags.compatibility)
    register(check_archiving_security, Tags.security)
