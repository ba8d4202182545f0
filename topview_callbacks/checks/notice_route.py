"""E014: each account's ``NOTICE_URL`` must reach the notice endpoint of this project.

A path that resolves to no route (a wrong prefix in ``include()``, a typo, the app's URLs
not included at all) loses every callback: Topview gets a 404 and only polling, 15
minutes later by default, learns the outcome. The check resolves the URL's path with the
project's own URLconf, as a request for it would be. Its message never shows the path
token (check output ends up in CI logs).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.urls import Resolver404, resolve

from topview_callbacks.checks.base import check_id, settings_check
from topview_callbacks.conf import topview_settings
from topview_callbacks.logs import redact

APP_NAMESPACE = "topview_callbacks"


@settings_check
def check_notice_route(raw: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for account in topview_settings.accounts.values():
        url = account.notice_url
        parts = urlsplit(url)
        if not url or parts.scheme not in ("http", "https") or not parts.netloc:
            continue  # nothing to check, or E009's to report
        found = _route_of(_site_path(parts.path))
        if found is None:
            return messages  # the URLconf cannot be loaded: Django's own checks say why
        if not found:
            messages.append(
                Error(
                    f"NOTICE_URL of account {account.name!r} ({redact(url)}) leads to no "
                    "route of topview_callbacks in this project's URLconf, so every "
                    "callback would get a 404.",
                    hint=(
                        "Give the public URL of topview_callbacks:notice (or of "
                        "notice-with-token): with path('topview/', "
                        "include('topview_callbacks.urls')) that is "
                        "https://<your host>/topview/notice/<token>/. Behind a proxy that "
                        "adds a path prefix, set FORCE_SCRIPT_NAME to that prefix."
                    ),
                    id=check_id("E014"),
                )
            )
    return messages


def _site_path(path: str) -> str:
    """The path as the URLconf sees it: without the prefix the site is mounted under."""
    path = unquote(path) or "/"
    prefix = (getattr(settings, "FORCE_SCRIPT_NAME", None) or "").rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix) :] or "/"
    return path


def _route_of(path: str) -> bool | None:
    """Whether ``path`` resolves to one of the app's notice routes; ``None`` when the
    URLconf itself fails to load (Django's URL checks report that)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    except Exception:  # a broken URLconf: reported by Django's check_url_config
        return None
    return APP_NAMESPACE in match.app_names and (match.url_name or "").startswith("notice")
