"""How the admin shows a row's values: coloured states, JSON and raw text, media players.

Everything here escapes what it is given (``format_html``, autoescaped templates): every
string in a notice came from outside and is shown as text, never as markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from topview_callbacks import biz_types
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import (
    ArchivedMedia,
    MediaState,
    Notice,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)

STATE_COLOURS = {
    NoticeState.PENDING: "#8a6d00",
    NoticeState.PROCESSED: "#1e7e34",
    NoticeState.FAILED: "#ba2121",
    NoticeState.DUPLICATE: "#666666",
    NoticeState.IGNORED: "#666666",
}
TASK_COLOURS = {
    TaskStatus.QUEUED: "#666666",
    TaskStatus.SENDING: "#8a6d00",
    TaskStatus.UNCERTAIN: "#b35900",
    TaskStatus.SUBMITTED: "#8a6d00",
    TaskStatus.RUNNING: "#205493",
    TaskStatus.SUCCESS: "#1e7e34",
    TaskStatus.FAIL: "#ba2121",
    TaskStatus.EXPIRED: "#666666",
}
#: Players on one page: a result may name thousands of outputs (one forged notice named
#: 34,000), and each player is a few hundred bytes of HTML.
MAX_PREVIEWS = 50
PRE_STYLE = (
    "white-space: pre-wrap; overflow-wrap: anywhere; max-height: 32em; overflow: auto; "
    "margin: 0; padding: 8px; background: var(--darkened-bg); color: var(--body-fg);"
)


def pretty_json(value: Any, fallback: str | None = None) -> str:
    """``value`` as indented JSON inside an escaped ``<pre>``.

    If that fails for any reason (a result nested too deeply for the recursion limit, stored
    before the endpoint refused those), ``fallback`` (the raw text) is shown instead: a
    hostile value must not take the page down.
    """
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    except Exception:
        if fallback is not None:
            return preformatted(fallback)
        return format_html("<em>{}</em>", _("This value cannot be displayed (nested too deeply?)."))
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text)


def preformatted(text: str) -> str:
    """``text`` verbatim (a raw body is evidence: not reformatted) in an escaped ``<pre>``."""
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text or "-")


def media_preview(
    media: Iterable[tuple[str, str]], copies: dict[tuple[str, int], str] | None = None
) -> str:
    """Players for the output media, playing the archived copy (``copies``, by kind and
    index) when there is one; only http(s) URLs and our own storage's URLs reach the page.
    Topview's URLs on hosts outside MEDIA_PREVIEW_HOSTS (when set) are shown as text."""
    hosts = topview_settings.media_preview_hosts
    items = []
    numbered = biz_types.numbered_media(list(media))
    for kind, index, url in numbered[:MAX_PREVIEWS]:
        copy = (copies or {}).get((kind, index))
        if copy is not None:
            items.append({"kind": kind, "url": copy, "archived": True, "preview": True})
        elif urlsplit(url).scheme.lower() in ("http", "https") and urlsplit(url).netloc:
            preview = _previewable(url, hosts)
            items.append({"kind": kind, "url": url, "archived": False, "preview": preview})
    hidden = max(0, len(numbered) - MAX_PREVIEWS)
    return render_to_string(
        "topview_callbacks/media_preview.html", {"media": items, "hidden": hidden}
    )


def archived_copies(task: SubmittedTask | None) -> dict[tuple[str, int], str]:
    """The URLs of a task's archived files, by (kind, index)."""
    if task is None:
        return {}
    rows = ArchivedMedia.objects.filter(task=task, state=MediaState.ARCHIVED).exclude(file="")
    return {(media.kind, media.index): media.file.url for media in rows}


def _previewable(url: str, hosts: list[str]) -> bool:
    """Whether MEDIA_PREVIEW_HOSTS (when set) lists the URL's host or a parent domain."""
    if not hosts:
        return True
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return any(host == allowed or host.endswith(f".{allowed}") for allowed in hosts)


# One line cut with "…" at this width; the full value in the title, shown on hover. Inline
# styles, as elsewhere here: the screens need no static file of their own.
TRUNCATE_STYLE = (
    "display: inline-block; max-width: {}em; overflow: hidden; text-overflow: ellipsis; "
    "white-space: nowrap; vertical-align: bottom;"
)


def truncated(text: str, width_em: int, css_class: str = "topview-truncate") -> str:
    """``text`` on one line of at most ``width_em`` em, the whole of it on hover.

    Long ids and URLs are unbreakable: left alone, they widen a list past a laptop's
    screen, or, where a column is squeezed, wrap one character per line."""
    return format_html(
        '<span class="{}" title="{}" style="{}">{}</span>',
        css_class,
        text,
        TRUNCATE_STYLE.format(width_em),
        text,
    )


def breakable(text: str) -> SafeString:
    """``text`` (escaped) that may wrap after each underscore: bizTypes such as
    ``PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE`` are one unbreakable word otherwise."""
    return format_html_join(mark_safe("_<wbr>"), "{}", ((part,) for part in text.split("_")))


def coloured(value: str, label: str, colours: dict[Any, str]) -> str:
    """``label`` in bold, in the colour ``colours`` gives ``value``."""
    return format_html(
        '<span style="color: {}; font-weight: bold">{}</span>', colours.get(value, "inherit"), label
    )


class NoticeStateColumn:
    """The notice's processing state, coloured (the notice list and the task's inline)."""

    @admin.display(description=_("processing state"), ordering="state")
    def coloured_state(self, notice: Notice) -> str:
        return coloured(notice.state, notice.get_state_display(), STATE_COLOURS)


class ListColumns:
    """The bizType and task id columns of both lists, narrow enough for a 1400 px screen."""

    @admin.display(description=_("bizType"), ordering="biz_type")
    def biz_type_column(self, row: Notice | SubmittedTask) -> str:
        return breakable(row.biz_type)

    @admin.display(description=_("task id"), ordering="task_id")
    def task_id_column(self, row: Notice | SubmittedTask) -> str:
        # 32 hex characters from Topview; search takes the whole id (hover shows it).
        return truncated(row.task_id, 6)


class OutcomeFields:
    """The result and its media, shown the same way for a notice and for a task."""

    @admin.display(description=_("preview"))
    def media_preview(self, row: Notice | SubmittedTask) -> str:
        task = row if isinstance(row, SubmittedTask) else row.submitted_task
        return media_preview(row.media(), archived_copies(task))

    @admin.display(description=_("result"))
    def result_json(self, row: Notice | SubmittedTask) -> str:
        return pretty_json(row.result, fallback=getattr(row, "raw_body", None))
