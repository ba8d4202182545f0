"""The archiving checks (E040-E045, W040, W041): each fires on its problem, none on the default."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Tags

from tests.support.checks import ARCHIVING, GOOD, ids, ours


def test_archiving_on_with_celery_and_the_defaults_passes(settings: Any) -> None:
    settings.CELERY_DB_REUSE_MAX = 1000
    assert ids(TOPVIEW_CALLBACKS=ARCHIVING) == []


def test_archiving_on_with_django_tasks_passes() -> None:
    pytest.importorskip("django_tasks_db")
    tasks_mode = {**ARCHIVING, "PROCESSING": "tasks", "TASKS_BACKEND": "database"}
    assert ids(TOPVIEW_CALLBACKS=tasks_mode) == []  # archive_media runs as a task


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"ARCHIVE_MEDIA": "yes"}, "E040"),
        ({"ARCHIVE_ALLOW_INSECURE": 0}, "E040"),
        ({"ARCHIVE_STORAGE": "nowhere"}, "E041"),
        ({"ARCHIVE_PATH": "topview/{task_id}{ext}"}, "E042"),
        ({"ARCHIVE_PATH": "{biz_type}/{task_id}/{kind}{index}/{secret}"}, "E042"),
        ({"ARCHIVE_PATH": "{biz_type"}, "E042"),
        ({"ARCHIVE_HOSTS": "aigc.s3.amazonaws.com"}, "E043"),
        ({"ARCHIVE_HOSTS": ["https://aigc.s3.amazonaws.com/"]}, "E043"),
        ({"ARCHIVE_MAX_BYTES": 0}, "E044"),
        ({"ARCHIVE_TIMEOUT": "30"}, "E044"),
        ({"ARCHIVE_DEADLINE": 0}, "E044"),
        ({"ARCHIVE_MAX_FILES": -1}, "E044"),
        ({"ARCHIVE_KINDS": ["video", "pdf"]}, "E045"),
        ({"PROCESSING": "inline"}, "W041"),
    ],
)
def test_each_archiving_problem_has_its_id(
    config: dict[str, Any], expected: str, settings: Any
) -> None:
    settings.CELERY_DB_REUSE_MAX = 1000
    assert ids(TOPVIEW_CALLBACKS={**ARCHIVING, **config}) == [f"topview_callbacks.{expected}"]


def test_unsafe_fetching_without_debug_is_a_deploy_warning(settings: Any) -> None:
    settings.TOPVIEW_CALLBACKS = {**GOOD, "ARCHIVE_ALLOW_INSECURE": True}
    assert [m.id for m in ours(tags=[Tags.security])] == ["topview_callbacks.W040"]
    settings.DEBUG = True
    assert [m.id for m in ours(tags=[Tags.security])] == []
