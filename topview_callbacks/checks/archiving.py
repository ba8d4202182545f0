"""Checks of media archiving (E040-E045, W040-W041; W040 is tagged ``security``)."""

from __future__ import annotations

import string
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from topview_callbacks.checks.base import check_id, is_number, settings_check
from topview_callbacks.conf import ARCHIVE_KINDS, DEFAULTS, SETTINGS_NAME

PATH_FIELDS = frozenset({"account", "biz_type", "task_id", "kind", "index", "ext"})
# Together they make a file's name unique (archive_names): two outputs never share a name.
# The values in FOLDER_FIELDS may hold "-", so each must be a whole folder: "{a}-{b}" would
# give "x-y" + "z" and "x" + "y-z" one name.
FOLDER_FIELDS = ("account", "biz_type", "task_id")
FILE_NAME_FIELDS = ("kind", "index")
REQUIRED_PATH_FIELDS = (*FOLDER_FIELDS, *FILE_NAME_FIELDS)
_INDEX = 987654321  # a number, so that "{index:03d}" still formats


def _value(raw: dict[str, Any], key: str) -> Any:
    return raw.get(key, DEFAULTS[key])


@settings_check
def check_archiving(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in (
        "ARCHIVE_MEDIA",
        "ARCHIVE_CONFIRM_URLS",
        "ARCHIVE_ALLOW_INSECURE",
    ):
        if not isinstance(_value(raw, key), bool):
            messages.append(
                Error(f"{SETTINGS_NAME}[{key!r}] must be True or False.", id=check_id("E040"))
            )
    alias = _value(raw, "ARCHIVE_STORAGE")
    if alias not in getattr(settings, "STORAGES", {}):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['ARCHIVE_STORAGE'] is {alias!r}, which is not in STORAGES.",
                hint="Name a storage alias from STORAGES, e.g. 'default'.",
                id=check_id("E041"),
            )
        )
    messages += _check_path(_value(raw, "ARCHIVE_PATH"))
    hosts = _value(raw, "ARCHIVE_HOSTS")
    if not isinstance(hosts, (list, tuple)) or not all(
        isinstance(host, str) and host and not any(c in host for c in "/:@ ") for host in hosts
    ):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['ARCHIVE_HOSTS'] must be a list of host names, each exact or "
                "'*.domain' for its subdomains (no scheme, port or path).",
                id=check_id("E043"),
            )
        )
    for key in ("ARCHIVE_MAX_BYTES", "ARCHIVE_MAX_FILES", "ARCHIVE_TIMEOUT", "ARCHIVE_DEADLINE"):
        if not is_number(value := _value(raw, key)) or value <= 0:
            messages.append(
                Error(f"{SETTINGS_NAME}[{key!r}] must be a positive number.", id=check_id("E044"))
            )
    kinds = _value(raw, "ARCHIVE_KINDS")
    if not isinstance(kinds, (list, tuple)) or not set(kinds) <= set(ARCHIVE_KINDS):
        messages.append(
            Error(
                f"{SETTINGS_NAME}['ARCHIVE_KINDS'] must be a list of {', '.join(ARCHIVE_KINDS)}.",
                id=check_id("E045"),
            )
        )
    queued = _value(raw, "PROCESSING") in ("celery", "tasks")  # an archive_media task
    if _value(raw, "ARCHIVE_MEDIA") is True and not queued:
        messages.append(
            Warning(
                "ARCHIVE_MEDIA is on without a task queue (Celery or Django Tasks): files are "
                "downloaded only when `manage.py topview_archive_media` runs, never in the "
                "callback request.",
                hint="Run it from cron every few minutes (Topview's URLs expire within a "
                'day), or silence this check if you do; or set PROCESSING to "celery" or '
                '"tasks".',
                id=check_id("W041"),
            )
        )
    return messages


def _path_is_injective(path: Any) -> bool:
    """``path`` names only known fields, each of ``FOLDER_FIELDS`` as a whole folder and
    each of ``FILE_NAME_FIELDS`` in the file's name."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(path) if name is not None}
        if not fields <= PATH_FIELDS:
            return False
        marks: dict[str, Any] = {name: f"\x00{name}\x00" for name in PATH_FIELDS}
        marks["index"] = _INDEX
        segments = path.format(**marks).split("/")
    except (TypeError, ValueError, AttributeError, KeyError, IndexError):
        return False
    return all(marks[name] in segments for name in FOLDER_FIELDS) and all(
        str(marks[name]) in segments[-1] for name in FILE_NAME_FIELDS
    )


def _check_path(path: Any) -> list[CheckMessage]:
    if _path_is_injective(path):
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['ARCHIVE_PATH'] must be a string with each of "
            f"{{{'}, {'.join(FOLDER_FIELDS)}}} as a folder of its own, {{kind}} and {{index}} "
            f"in the file's name, and no fields other than {', '.join(sorted(PATH_FIELDS))}: "
            "two outputs must never get one name.",
            hint=f"The default is {DEFAULTS['ARCHIVE_PATH']!r}.",
            id=check_id("E042"),
        )
    ]


@settings_check
def check_archiving_security(raw: dict[str, Any]) -> list[CheckMessage]:
    if not raw.get("ARCHIVE_ALLOW_INSECURE") or settings.DEBUG:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['ARCHIVE_ALLOW_INSECURE'] is on while DEBUG is off: a forged "
            "notice could make the server fetch over clear text or from internal addresses.",
            hint="This switch is for tests and the demo; turn it off in production.",
            id=check_id("W040"),
        )
    ]
