"""Archiving as the tests drive it: tasks whose results name files on the media server
(tests/support/media_server.py), the archiving run, and what landed in the storage."""

from __future__ import annotations

from pathlib import Path

from topview_callbacks import archiving
from topview_callbacks.models import ArchivedMedia, Notice, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

# The size of each file the ``server`` fixture's media server sends.
ARCHIVED_SIZE = 200_000


def stored_files(root: Path) -> list[str]:
    """The files under ``root/media`` (``archive_settings``' storage), relative to ``root``."""
    return sorted(str(p.relative_to(root)) for p in (root / "media").rglob("*") if p.is_file())


def task_with(*urls: str, task_id: str = "t1") -> SubmittedTask:
    """A successful text2video task whose result names ``urls``, with its archiving rows."""
    task = SubmittedTask.objects.create(
        biz_type="COMMON_TASK_TEXT2VIDEO",
        task_id=task_id,
        status="success",
        result={"status": "success", "videos": [{"filePath": url} for url in urls]},
    )
    archiving.create_rows(task)
    return task


def archive(task: SubmittedTask) -> list[ArchivedMedia]:
    """Archive ``task``'s files now, in this process; its rows as they ended, in order."""
    archiving.archive_task(task.pk)
    return list(ArchivedMedia.objects.filter(task=task).order_by("index"))


def deliver_text2video(url: str, task_id: str = "tv1", run_on_commit: bool = True) -> Notice:
    """Topview's notice of a text2video task whose video is at ``url``, delivered."""
    result = {"taskId": task_id, "status": "success", "videos": [{"filePath": url}]}
    payload = notice_payload("COMMON_TASK_TEXT2VIDEO", task_id=task_id, result=result)
    assert deliver_notice(payload, run_on_commit=run_on_commit).status_code == 200
    return Notice.objects.get(task_id=task_id)
