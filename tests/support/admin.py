"""The admin through Django's test client: its URLs, its actions, the messages it shows."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from topview_callbacks.models import Notice, SubmittedTask


def change_url(obj: Notice | SubmittedTask) -> str:
    return reverse(f"admin:topview_callbacks_{obj._meta.model_name}_change", args=[obj.pk])


def action(client: Client, url: str, name: str, rows: list[Any], **extra: str) -> Any:
    """Run the changelist action ``name`` at ``url`` on ``rows``; the page it ends on."""
    data = {"action": name, "_selected_action": [str(row.pk) for row in rows], **extra}
    return client.post(url, data, follow=True)


def page_messages(response: Any) -> list[tuple[str, str]]:
    """The messages a page shows: (level, text)."""
    return [(m.level_tag, str(m)) for m in response.context["messages"]]
