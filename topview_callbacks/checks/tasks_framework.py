"""Checks of ``PROCESSING = "tasks"``: Django's Tasks framework (E060-E063, W060-W062).

The settings are read first, as plain data (``TASKS``, ``TASKS_BACKEND``, ``TASKS_QUEUE``):
a backend alias or queue the framework would refuse makes ``tasks_framework`` fail to import,
so it is imported only once they look right, to ask the backend what it can do.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import DEFAULTS, SETTINGS_NAME

# The framework's own default, when the project's settings have no TASKS.
_DEFAULT_QUEUES = ["default"]


def framework_installed() -> bool:
    """django.tasks (Django 6.0+) or the django-tasks backport can be imported."""
    try:
        return (
            importlib.util.find_spec("django.tasks") is not None
            or importlib.util.find_spec("django_tasks") is not None
        )
    except ImportError:
        return False


@settings_check
def check_tasks_framework(raw: dict[str, Any]) -> list[CheckMessage]:
    if raw.get("PROCESSING", DEFAULTS["PROCESSING"]) != "tasks":
        return []
    if not framework_installed():
        return [
            Error(
                f"{SETTINGS_NAME}['PROCESSING'] is 'tasks' but Django's Tasks framework is not "
                "available: it needs Django 6.0, or the django-tasks backport.",
                hint="Install the 'tasks' extra (topview-callbacks[tasks]), or use 'inline' or "
                "'celery'.",
                id=check_id("E060"),
            )
        ]
    alias = raw.get("TASKS_BACKEND", DEFAULTS["TASKS_BACKEND"])
    queue = raw.get("TASKS_QUEUE", DEFAULTS["TASKS_QUEUE"])
    if not (isinstance(alias, str) and alias and isinstance(queue, str) and queue):
        return [
            Error(
                f"{SETTINGS_NAME}['TASKS_BACKEND'] and 'TASKS_QUEUE' must be non-empty strings.",
                hint="The alias of a backend in your TASKS setting, and a queue it serves.",
                id=check_id("E061"),
            )
        ]
    return _check_configuration(alias, queue) or _check_backend(alias)


def _check_configuration(alias: str, queue: str) -> list[CheckMessage]:
    tasks = getattr(settings, "TASKS", None)
    configured = tasks if isinstance(tasks, dict) and tasks else {"default": {}}
    if alias not in configured:
        return [
            Error(
                f"{SETTINGS_NAME}['TASKS_BACKEND'] is {alias!r}, which is not a backend of "
                "your TASKS setting: no notice could be queued.",
                hint=f"Add {alias!r} to TASKS, or set TASKS_BACKEND to one of: "
                f"{', '.join(map(str, configured))}.",
                id=check_id("E062"),
            )
        ]
    params = configured[alias]
    queues = params.get("QUEUES", _DEFAULT_QUEUES) if isinstance(params, dict) else []
    if queues and queue not in queues:
        return [
            Error(
                f"{SETTINGS_NAME}['TASKS_QUEUE'] is {queue!r}, but the {alias!r} tasks backend "
                f"only accepts the queues {', '.join(map(str, queues))}: no notice could be "
                "queued.",
                hint=f"Add {queue!r} to TASKS[{alias!r}]['QUEUES'], or set TASKS_QUEUE to one "
                "of them.",
                id=check_id("E063"),
            )
        ]
    return []


def _check_backend(alias: str) -> list[CheckMessage]:
    try:
        from topview_callbacks import tasks_framework

        backend = tasks_framework.backend()
    except Exception as exc:
        return [
            Error(
                f"The {alias!r} tasks backend (TASKS_BACKEND) can't be loaded: {exc}",
                hint="Check its BACKEND path in your TASKS setting, and INSTALLED_APPS.",
                id=check_id("E062"),
            )
        ]
    kinds = {klass.__name__ for klass in type(backend).__mro__}
    if "DummyBackend" in kinds:
        return [
            Warning(
                f"The {alias!r} tasks backend is the DummyBackend: it never runs a task, so "
                "Topview notices are stored and not processed.",
                hint="Use a backend with workers (django-tasks-db's DatabaseBackend), or "
                "PROCESSING='manual' if something else processes them.",
                id=check_id("W061"),
            )
        ]
    if "ImmediateBackend" in kinds:
        if settings.DEBUG:
            return []
        return [
            Warning(
                f"The {alias!r} tasks backend is the ImmediateBackend (Django's default when "
                "TASKS is not set): notices are processed in the web request, as with "
                "PROCESSING='inline', and a failed one is retried only by the sweep.",
                hint="Configure a backend with workers, such as django-tasks-db's "
                "DatabaseBackend, or say what you mean with PROCESSING='inline'.",
                id=check_id("W060"),
            )
        ]
    if not backend.supports_defer:
        return [
            Warning(
                f"The {alias!r} tasks backend can't defer a task (run_after), so a notice whose "
                "receiver raised is retried only by the sweep, after SWEEP_AFTER + "
                "RETRY_BACKOFF_MAX, not with backoff.",
                hint="Schedule the sweep (topview_sweep, or the tasks_framework.sweep task), or "
                "use a backend that supports run_after.",
                id=check_id("W062"),
            )
        ]
    return []
