"""Archiving wired in: processing makes the rows, Celery/command/admin download, pruning
keeps the files, the admin shows them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from tests.support.admin import action, change_url, page_messages
from tests.support.archive import deliver_text2video, stored_files, task_with
from tests.support.media_server import MediaServer
from topview_callbacks import pruning, tasks
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, SubmittedTask
from topview_callbacks.processing import process_due
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db


def test_a_processed_success_leaves_pending_rows_and_no_download_in_the_request(
    server: MediaServer, archive_settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        notice = deliver_text2video(f"{server.url}/ok/p.mp4")

    media = ArchivedMedia.objects.get()
    assert media.state == MediaState.PENDING
    assert media.notice == notice and media.task.task_id == "tv1"
    assert sum(server.hits.values()) == 0  # downloads never run in the callback request


def test_a_failed_outcome_or_archiving_off_makes_no_rows(
    archive_settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        deliver_notice(notice_payload("COMMON_TASK_TEXT2VIDEO", task_id="f", status="fail"))
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_MEDIA": False,
    }
    with django_capture_on_commit_callbacks(execute=True):
        deliver_notice(notice_payload("COMMON_TASK_TEXT2VIDEO", task_id="off"))

    assert not ArchivedMedia.objects.exists()


def test_the_celery_notice_job_queues_one_download_per_file_which_retries_then_stores(
    server: MediaServer,
    archive_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    queued: list[tuple[Any, float | None]] = []
    monkeypatch.setattr(
        tasks.archive_media,
        "apply_async",
        lambda args, countdown=None, **options: queued.append((tuple(args), countdown)),
    )
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "PROCESSING": "manual",
    }
    notice = deliver_text2video(f"{server.url}/flaky/q.mp4", task_id="celery1")

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.process_notices.apply().get() == 1
    media = ArchivedMedia.objects.get()
    assert Notice.objects.get(pk=notice.pk).state == "processed"
    assert queued == [((media.pk,), None)]

    # The 503: the job queues the download's retry, due when the row says (RETRY_BACKOFF
    # is 0 here); that one stores the file.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.archive_media.apply((media.pk,)).get() == MediaState.PENDING
    assert queued[-1] == ((media.pk,), 0.0)
    assert tasks.archive_media.apply((media.pk,)).get() == MediaState.ARCHIVED
    media.refresh_from_db()
    assert (media.state, media.attempts) == (MediaState.ARCHIVED, 2)
    assert len(stored_files(tmp_path)) == 1


def test_the_command_archives_due_files_and_retries_failed_ones(
    server: MediaServer, archive_settings: Any
) -> None:
    good = task_with(f"{server.url}/ok/r.mp4", task_id="r")
    bad = task_with(f"{server.url}/html/s.mp4", task_id="s")
    out = io.StringIO()

    call_command("topview_archive_media", stdout=out)

    assert "Worked on 2 file(s). Now: 1 archived, 1 refused." in out.getvalue()
    ArchivedMedia.objects.filter(task=bad).update(source_url=f"{server.url}/ok/s.mp4")
    call_command("topview_archive_media", "--task", "s", "--retry-failed", stdout=out)
    assert ArchivedMedia.objects.get(task=bad).state == MediaState.ARCHIVED
    assert ArchivedMedia.objects.get(task=good).state == MediaState.ARCHIVED


def test_archive_now_downloads_and_the_task_page_shows_and_plays_the_file(
    server: MediaServer,
    archive_settings: Any,
    client: Client,
) -> None:
    operator = User.objects.create_user("operator", password="pw", is_staff=True)
    operator.user_permissions.set(
        Permission.objects.filter(codename__in=["view_submittedtask", "replay_notice"])
    )
    client.force_login(operator)
    task = task_with(f"{server.url}/ok/t.mp4", task_id="t")
    url = "/admin/topview_callbacks/submittedtask/"

    response = action(client, url, "archive_now", [task])

    assert page_messages(response) == [
        ("success", "COMMON_TASK_TEXT2VIDEO t: 1 of 1 file(s) archived.")
    ]
    media = ArchivedMedia.objects.get()
    page = client.get(change_url(task)).content.decode()
    assert media.file.url in page  # the stored file's link, and the preview plays it
    assert "(archived copy)" in page
    filtered = client.get(url + "?archive=incomplete").content.decode()
    assert change_url(task) not in filtered


def test_pruning_keeps_tasks_with_archived_files_unless_asked(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    task = task_with(f"{server.url}/ok/u.mp4", task_id="u")
    call_command("topview_archive_media", stdout=io.StringIO())
    SubmittedTask.objects.filter(pk=task.pk).update(completed_at="2000-01-01T00:00:00Z")

    kept = pruning.prune()
    assert (kept.tasks, kept.kept_for_files) == (0, 1)
    assert len(stored_files(tmp_path)) == 1

    out = io.StringIO()
    call_command("topview_prune", "--delete-files", stdout=out)
    assert "1 task(s), 1 archived file(s) and 0 rejection count(s)" in out.getvalue()
    assert stored_files(tmp_path) == []
    assert not ArchivedMedia.objects.exists()


def test_verify_with_query_archives_the_verified_urls(
    server: MediaServer, archive_settings: Any
) -> None:
    import responses

    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "VERIFY_WITH_QUERY": True,
        "PROCESSING": "manual",
    }
    notice = deliver_text2video("https://attacker.example/x.mp4", task_id="v")
    verified = {"status": "success", "videos": [{"filePath": f"{server.url}/ok/v.mp4"}]}
    with responses.RequestsMock() as mock:
        mock.get(
            "https://api.topview.test/v1/common_task/text2video/task/query",
            body=json.dumps({"code": "200", "message": "ok", "result": verified}),
        )
        process_due(notice_id=notice.pk)

    assert ArchivedMedia.objects.get().source_url == f"{server.url}/ok/v.mp4"


# --- pinned down by mutation testing on PostgreSQL (docs/mutation-testing.md) ----------------


def test_a_queued_success_leaves_rows_linked_to_its_notice(archive_settings: Any) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "PROCESSING": "manual",
    }
    notice = deliver_text2video("http://127.0.0.1:9/q.mp4", task_id="tv-queued")
    assert not ArchivedMedia.objects.exists()
    process_due()
    media = ArchivedMedia.objects.get()
    assert (media.notice, media.task.task_id) == (notice, "tv-queued")
