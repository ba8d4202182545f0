"""What the admin's actions do, row by row, and how they report it to the operator.

Each action runs the same plain functions as the management commands (``processing``,
``polling``) on a bounded selection, and turns each row's outcome into a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from topview_callbacks import polling, processing
from topview_callbacks.models import Notice, NoticeState, SubmittedTask

#: The most rows one action runs on synchronously; beyond it, use the management commands.
MAX_ACTION_ROWS = 200
#: The most per-row messages one action shows; the rest are summed up in one line.
MAX_ROW_MESSAGES = 20


def run_rows(
    request: HttpRequest,
    model_admin: admin.ModelAdmin[Any],
    rows: Iterable[Any],
    run: Callable[[Any], tuple[int, str]],
) -> None:
    """Run ``run`` per row and report each outcome; at most ``MAX_ROW_MESSAGES`` lines."""
    counts: dict[int, int] = {}
    shown = 0
    for row in rows:
        level, text = run(row)
        counts[level] = counts.get(level, 0) + 1
        if shown < MAX_ROW_MESSAGES:
            model_admin.message_user(request, text, level)
            shown += 1
    if shown < sum(counts.values()):
        summary = ", ".join(
            f"{count} {messages.DEFAULT_TAGS[level]}" for level, count in sorted(counts.items())
        )
        model_admin.message_user(request, _("In all: %s.") % summary, messages.INFO)


def too_many(request: HttpRequest, model_admin: admin.ModelAdmin[Any], queryset: Any) -> bool:
    # Bounded: "select all" on a filtered million-row list must not count it all.
    if len(queryset.order_by().values("pk")[: MAX_ACTION_ROWS + 1]) <= MAX_ACTION_ROWS:
        return False
    model_admin.message_user(
        request,
        _(
            "Select at most %(limit)d rows for this action; for more, use the management "
            "commands (they run the same code)."
        )
        % {"limit": MAX_ACTION_ROWS},
        messages.ERROR,
    )
    return True


def last_line(traceback_text: str) -> str:
    lines = [line for line in traceback_text.strip().splitlines() if line.strip()]
    return Truncator(lines[-1] if lines else "").chars(200)


def replay_one(notice: Notice) -> tuple[int, str]:
    """Replay one notice through ``processing.replay_notice``; (message level, text)."""
    label = f"{notice.biz_type} {notice.task_id} ({notice.uuid})"
    if notice.state == NoticeState.DUPLICATE:
        return messages.WARNING, _(
            "%s: its task already had an outcome; receivers not fired (duplicate)."
        ) % label
    try:
        done = processing.replay_notice(notice.pk)
    except Exception as exc:  # an error in processing itself, not in a receiver
        return messages.ERROR, _("%(notice)s: could not reprocess: %(error)s") % {
            "notice": label,
            "error": exc,
        }
    if done is None:
        return messages.WARNING, _("%s: skipped, it is being processed right now.") % label
    if done.state == NoticeState.FAILED:
        return messages.ERROR, _("%(notice)s: a receiver failed again: %(error)s") % {
            "notice": label,
            "error": last_line(done.last_error),
        }
    if done.state == NoticeState.DUPLICATE:
        return messages.WARNING, _(
            "%s: its task already had an outcome; receivers not fired (duplicate)."
        ) % label
    return messages.SUCCESS, _("%s: reprocessed, the receivers ran.") % label


def poll_one(task: SubmittedTask) -> tuple[int, str]:
    """Poll one task through ``polling.poll_task``; (message level, text).

    A final answer is recorded as a ``source="poll"`` notice and processed; the message
    names that notice, or says there is none yet (the task is unfinished, or its outcome
    came another way meanwhile).
    """
    label = f"{task.biz_type} {task.task_id}"
    try:
        notice = polling.poll_task(task)
    except Exception as exc:
        return messages.ERROR, _("%(task)s: polling failed: %(error)s") % {
            "task": label,
            "error": exc,
        }
    outcome = notice if notice is not None else _("none yet")
    return messages.SUCCESS, _("%(task)s: polled, outcome: %(outcome)s") % {
        "task": label,
        "outcome": outcome,
    }
