"""Models: what they say of themselves, and migrations in step with the models."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from topview_callbacks.models import Notice, SubmittedTask


@pytest.mark.django_db
def test_migrations_match_the_models() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "topview_callbacks", "--check", "--dry-run", stdout=out)
    except SystemExit as exc:  # raised when a migration would be made
        pytest.fail(f"models and migrations have drifted:\n{out.getvalue()} ({exc})")


@pytest.mark.django_db
def test_str_of_models_names_what_they_are() -> None:
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t9")
    assert str(task) == "VOICE_CLONE t9 (submitted)"
    notice = Notice(uuid="u9", biz_type="VOICE_CLONE", task_id="t9", status="fail")
    assert str(notice) == "VOICE_CLONE t9 fail (u9)"


@pytest.mark.parametrize(
    ("last_error", "summary"),
    [
        ("", ""),
        (
            "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n\n",
            "RuntimeError: boom",
        ),
        ("one line", "one line"),
        ("E: " + "x" * 300, "E: " + "x" * 196 + "…"),
    ],
)
def test_error_summary_is_the_exception_line_of_the_traceback(
    last_error: str, summary: str
) -> None:
    assert Notice(last_error=last_error).error_summary == summary
