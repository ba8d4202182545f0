"""Hardening, second round (issue 24): archived files. Each finding of the December 2026
review, replayed through the public functions against a real HTTP server on 127.0.0.1.

The names say which finding they close: ``test_round2_f1_`` ... docs/security.md cites them.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import responses
from django.core.files.storage import storages
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.support.archive import ARCHIVED_SIZE, archive, stored_files
from tests.support.checks import ARCHIVING, ids
from tests.support.media_server import MediaServer, body_for
from topview_callbacks import archiving, signals
from topview_callbacks.downloads import address_refusal
from topview_callbacks.models import ArchivedMedia, MediaState, Notice, SubmittedTask
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db

RESULT_PATHS = {
    "video": ("COMMON_TASK_TEXT2VIDEO", "videos"),
    "image": ("COMMON_TASK_TEXT2IMAGE", "images"),
}


def task_of(kind: str, *urls: str, task_id: str = "t1", account: str = "default") -> SubmittedTask:
    biz_type, key = RESULT_PATHS[kind]
    task = SubmittedTask.objects.create(
        account=account,
        biz_type=biz_type,
        task_id=task_id,
        status="success",
        result={"status": "success", key: [{"filePath": url} for url in urls]},
    )
    archiving.create_rows(task)
    return task


# --- 1. stored XSS: the extension and the stored type come from the kind, never the sender --


@pytest.mark.parametrize(
    ("kind", "path", "name", "content_type"),
    [
        # HTML with no Content-Type, named .htm: stored as the kind's default, typed by it.
        ("video", "/typed/x.htm?type=none", "video-0.mp4", "video/mp4"),
        ("image", "/typed/y.xhtml?type=application/octet-stream", "image-0.jpg", "image/jpeg"),
        ("video", "/typed/z.html?type=binary/octet-stream", "video-0.mp4", "video/mp4"),
        # A type of the kind names the format; a URL extension of the kind does when the
        # type is generic.
        ("video", "/typed/w.mp4?type=video/webm", "video-0.webm", "video/webm"),
        ("image", "/typed/v.png?type=application/octet-stream", "image-0.png", "image/png"),
        ("image", "/typed/u.gif?type=image/jpg", "image-0.jpg", "image/jpeg"),
    ],
)
def test_round2_f1_the_stored_name_and_type_come_from_the_kind_not_the_sender(
    kind: str,
    path: str,
    name: str,
    content_type: str,
    server: MediaServer,
    archive_settings: Any,
) -> None:
    [media] = archive(task_of(kind, server.url + path))

    assert media.state == MediaState.ARCHIVED
    assert media.file.name.rsplit("/", 1)[-1] == name
    assert media.content_type == content_type


@pytest.mark.parametrize(
    ("kind", "path", "words"),
    [
        ("image", "/typed/b.svg?type=image/svg%2Bxml", "'image/svg+xml' is not one of the image"),
        ("video", "/typed/a.html?type=text/html", "'text/html' is not one of the video"),
        ("image", "/typed/c.png?type=application/xhtml%2Bxml", "'application/xhtml+xml' is not"),
        ("video", "/typed/d.mp4?type=image/png", "'image/png' is not one of the video"),
        ("image", "/typed/e.jpg?type=video/mp4", "'video/mp4' is not one of the image"),
    ],
)
def test_round2_f1_svg_html_and_types_of_another_kind_are_refused_and_nothing_is_kept(
    kind: str, path: str, words: str, server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    [media] = archive(task_of(kind, server.url + path))

    assert media.state == MediaState.REFUSED
    assert words in media.last_error
    assert stored_files(tmp_path) == []


def test_round2_f1_the_admin_links_to_a_stored_file_as_a_download(
    server: MediaServer, archive_settings: Any, admin_client: Client
) -> None:
    task = task_of("video", f"{server.url}/typed/x.htm?type=none")
    [media] = archive(task)

    html = admin_client.get(
        reverse("admin:topview_callbacks_submittedtask_change", args=[task.pk])
    ).content.decode()

    assert f'<a href="/media/{media.file.name}" download>' in html
    assert ".htm" not in media.file.name


def test_round2_f1_the_default_hosts_accept_no_cloudfront_distribution() -> None:
    from topview_callbacks.conf import DEFAULTS
    from topview_callbacks.downloads import host_allowed

    assert not host_allowed("d111111abcdef8.cloudfront.net", DEFAULTS["ARCHIVE_HOSTS"])
    assert host_allowed("aigc.s3.amazonaws.com", DEFAULTS["ARCHIVE_HOSTS"])


# --- 1, 4, 5 at their source: only URLs Topview itself returns for the task are fetched ---

QUERY = "https://api.topview.test/v1/common_task/text2video/task/query"


@pytest.fixture
def confirming(archive_settings: Any) -> Any:
    """The default: URLs are confirmed with Topview's query (mocked with ``responses``)."""
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_CONFIRM_URLS": True,
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        yield api


def topview_answers(api: Any, *urls: str, status: str = "success") -> None:
    result = {"status": status, "videos": [{"filePath": url} for url in urls]}
    api.get(QUERY, json={"code": "200", "message": "Success", "result": result})


def test_round2_f1_only_the_urls_topview_returns_for_the_task_are_fetched(
    server: MediaServer, confirming: Any
) -> None:
    topview_answers(confirming, f"{server.url}/ok/real.mp4")
    task = task_of(
        "video",
        f"{server.url}/typed/x.htm?type=text/html",  # the sender's page: never fetched
        f"{server.url}/trickle/y.mp4",  # an output Topview does not name
    )

    first, second = archive(task)

    assert (first.state, first.source_url) == (MediaState.ARCHIVED, f"{server.url}/ok/real.mp4")
    assert first.confirmed_at is not None
    assert first.file.read() == body_for("real.mp4", ARCHIVED_SIZE)
    assert second.state == MediaState.REFUSED
    assert "Topview's answer about the task does not name this output" in second.last_error
    assert set(server.hits) == {"/ok/real.mp4"}
    assert len(confirming.calls) == 1


def test_round2_f5_a_task_topview_does_not_know_costs_one_query_and_no_download(
    server: MediaServer, confirming: Any, record_signal: Any
) -> None:
    failed = record_signal(signals.media_archive_failed)
    confirming.get(QUERY, json={"code": "4004", "message": "Resource not found", "result": None})
    task = task_of("video", *(f"{server.url}/missing/{n}.mp4" for n in range(3)), task_id="gone")

    rows = archive(task)

    assert [row.state for row in rows] == [MediaState.REFUSED] * 3
    assert all("Topview error 4004: Resource not found" in row.last_error for row in rows)
    assert len(confirming.calls) == 1  # not one per file, and not once per attempt
    assert sum(server.hits.values()) == 0
    assert len(failed.calls) == 3
    archive(task)  # nothing is due: no further query
    assert len(confirming.calls) == 1


def test_round2_f5_an_expired_url_is_asked_about_once_per_task(
    server: MediaServer, confirming: Any
) -> None:
    fresh = [f"{server.url}/expiring/{n}.mp4?sig=fresh" for n in range(3)]
    topview_answers(confirming, *fresh)
    task = task_of("video", *(f"{server.url}/expiring/{n}.mp4?sig=old" for n in range(3)))
    ArchivedMedia.objects.filter(task=task).update(confirmed_at=timezone.now())

    rows = archive(task)

    assert [row.state for row in rows] == [MediaState.ARCHIVED] * 3
    assert [row.source_url for row in rows] == fresh
    assert len(confirming.calls) == 1


def test_round2_f5_a_url_still_gone_after_the_answer_expires_every_file_of_the_task(
    server: MediaServer, confirming: Any
) -> None:
    confirming.get(QUERY, json={"code": "4004", "message": "Resource not found", "result": None})
    task = task_of("video", f"{server.url}/missing/a.mp4", f"{server.url}/missing/b.mp4")
    ArchivedMedia.objects.filter(task=task).update(confirmed_at=timezone.now())

    rows = archive(task)

    assert [row.state for row in rows] == [MediaState.EXPIRED] * 2
    assert len(confirming.calls) == 1
    assert server.hits["/missing/a.mp4"] == 1 and server.hits["/missing/b.mp4"] == 0


def test_round2_f5_while_one_worker_asks_about_a_task_the_others_wait_for_its_answer(
    server: MediaServer, confirming: Any
) -> None:
    topview_answers(confirming, f"{server.url}/ok/a.mp4", f"{server.url}/ok/b.mp4")
    task = task_of("video", "https://forged.example/a.mp4", "https://forged.example/b.mp4")
    first, second = ArchivedMedia.objects.filter(task=task).order_by("pk")
    # Another worker holds the task's lease: it is asking Topview right now.
    ArchivedMedia.objects.filter(pk=first.pk).update(confirming_at=timezone.now())

    waiting = archiving.archive_one(second.pk)

    assert waiting is not None and waiting.state == MediaState.PENDING
    assert waiting.attempts == 0  # waiting is not an attempt
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > timezone.now()
    assert len(confirming.calls) == 0
    # The lease ends (the other worker has its answer): one query serves both files.
    ArchivedMedia.objects.filter(task=task).update(confirming_at=None, next_attempt_at=None)
    assert [row.state for row in archive(task)] == [MediaState.ARCHIVED] * 2
    assert len(confirming.calls) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_round2_f5_workers_starting_a_tasks_files_at_once_ask_topview_once(
    server: MediaServer, confirming: Any
) -> None:
    urls = [f"{server.url}/ok/{n}.mp4" for n in range(4)]
    result = {"status": "success", "videos": [{"filePath": url} for url in urls]}

    def slow_answer(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.5)  # the others claim their rows meanwhile
        return 200, {}, json.dumps({"code": "200", "message": "Success", "result": result})

    confirming.add_callback(responses.GET, QUERY, callback=slow_answer)
    task = task_of("video", *(f"https://forged.example/{n}.mp4" for n in range(4)))
    ids = list(ArchivedMedia.objects.filter(task=task).values_list("pk", flat=True))
    start = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def worker(pk: int) -> None:
        try:
            start.wait()
            archiving.archive_one(pk)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(pk,)) for pk in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ArchivedMedia.objects.filter(task=task).update(next_attempt_at=None)  # the waits are over
    archive(task)

    assert errors == []
    assert len(confirming.calls) == 1
    assert set(ArchivedMedia.objects.values_list("state", flat=True)) == {MediaState.ARCHIVED}
    assert [server.hits[f"/ok/{n}.mp4"] for n in range(4)] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("status", "state", "words"),
    [
        ("fail", MediaState.REFUSED, "Topview reports the task as failed"),
        ("running", MediaState.PENDING, "Topview reports the task as 'running'"),
    ],
)
def test_round2_f5_a_task_topview_reports_failed_or_running_is_not_fetched(
    status: str,
    state: str,
    words: str,
    server: MediaServer,
    confirming: Any,
    archive_settings: Any,
) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "RETRY_BACKOFF": 60,
    }
    topview_answers(confirming, f"{server.url}/ok/a.mp4", status=status)
    task = task_of("video", f"{server.url}/ok/a.mp4", f"{server.url}/ok/b.mp4")

    rows = archive(task)

    assert [row.state for row in rows] == [state, state]
    assert words in rows[0].last_error
    assert len(confirming.calls) == 1 and sum(server.hits.values()) == 0
    if state == MediaState.PENDING:  # both retried together, at the first one's next query
        assert rows[1].next_attempt_at == rows[0].next_attempt_at


def test_round2_f1_a_polled_result_is_topviews_own_and_is_not_asked_about_again(
    server: MediaServer, confirming: Any
) -> None:
    task = SubmittedTask.objects.create(
        biz_type="COMMON_TASK_TEXT2VIDEO",
        task_id="polled",
        status="success",
        result={"status": "success", "videos": [{"filePath": f"{server.url}/ok/p.mp4"}]},
    )
    notice = Notice.objects.create(
        uuid="poll-1", biz_type=task.biz_type, task_id="polled", status="success", source="poll"
    )
    ArchivedMedia.objects.add_for_task(task, notice)

    [media] = archive(task)

    assert media.state == MediaState.ARCHIVED
    assert len(confirming.calls) == 0


# --- 2. one task's archive overwriting another's -------------------------------------------


def test_round2_f2_task_ids_that_reduce_alike_get_folders_of_their_own(
    server: MediaServer, archive_settings: Any
) -> None:
    [legit] = archive(task_of("video", f"{server.url}/ok/legit.mp4", task_id="legit-task-0001"))
    [forged] = archive(task_of("video", f"{server.url}/ok/forged.mp4", task_id=".legit-task-0001"))
    [spaced] = archive(task_of("video", f"{server.url}/ok/x.mp4", task_id="legit task 0001"))

    names = {legit.file.name, forged.file.name, spaced.file.name}
    assert len(names) == 3
    assert legit.file.name == "topview/default/COMMON_TASK_TEXT2VIDEO/legit-task-0001/video-0.mp4"
    legit.refresh_from_db()
    on_disk = storages["default"].open(legit.file.name).read()
    assert hashlib.sha256(on_disk).hexdigest() == legit.sha256
    assert on_disk == body_for("legit.mp4", ARCHIVED_SIZE)


def test_round2_f2_names_are_injective_and_cannot_leave_their_folder(
    archive_settings: Any,
) -> None:
    from topview_callbacks import archive_names

    values = ["X", ".X", "..X", "_X", "a b", "a_b", "..", "_", "../../etc/passwd", "a/b"]
    folders = {archive_names.component(value) for value in values}

    assert len(folders) == len(values)
    assert all("/" not in folder and folder not in (".", "..") for folder in folders)
    assert archive_names.component("legit-task-0001") == "legit-task-0001"


def test_round2_f2_a_file_another_row_records_is_never_replaced(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    [first] = archive(task_of("video", f"{server.url}/ok/first.mp4", task_id="one"))
    task = task_of("video", f"{server.url}/ok/second.mp4", task_id="two")
    # As if two names collided: the other row already records this task's final name.
    ArchivedMedia.objects.filter(pk=first.pk).update(
        file="topview/default/COMMON_TASK_TEXT2VIDEO/two/video-0.mp4"
    )
    storage = storages["default"]
    storage.save("topview/default/COMMON_TASK_TEXT2VIDEO/two/video-0.mp4", first.file)

    [second] = archive(task)

    assert second.state == MediaState.REFUSED
    assert "is the file of another archived row" in second.last_error
    kept = storage.open("topview/default/COMMON_TASK_TEXT2VIDEO/two/video-0.mp4").read()
    assert kept == body_for("first.mp4", ARCHIVED_SIZE)


@pytest.mark.parametrize(
    "path",
    [
        "topview/{biz_type}/{task_id}/{kind}-{index}{ext}",  # no account
        "topview/{account}-{biz_type}/{task_id}/{kind}-{index}{ext}",  # not a folder each
        "topview/{account}/{biz_type}/{task_id}{kind}-{index}{ext}",  # task id in the name
        "topview/{account}/{biz_type}/{task_id}/{kind}/{index}{ext}",  # kind not in the name
    ],
)
def test_round2_f2_archive_path_must_keep_every_value_apart(path: str, settings: Any) -> None:
    settings.CELERY_DB_REUSE_MAX = 1000
    assert ids(TOPVIEW_CALLBACKS={**ARCHIVING, "ARCHIVE_PATH": path}) == ["topview_callbacks.E042"]
    fine = "media/{account}/{biz_type}/{task_id}/{index:03d}-{kind}{ext}"
    assert ids(TOPVIEW_CALLBACKS={**ARCHIVING, "ARCHIVE_PATH": fine}) == []


# --- 4. no overall deadline on a download ------------------------------------------------


@pytest.mark.parametrize("storage", ["disk", "generic"])
@pytest.mark.parametrize("route", ["trickle", "trickleheaders"])
def test_round2_f4_a_trickling_server_is_cut_off_at_the_deadline(
    route: str,
    storage: str,
    server: MediaServer,
    archive_settings: Any,
    tmp_path: Path,
    record_signal: Any,
) -> None:
    if storage == "generic":  # a storage with its own _save: read by storage.save
        archive_settings.STORAGES = {
            **archive_settings.STORAGES,
            "default": {
                "BACKEND": "tests.test_downloads_storing.SavingStorage",
                "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
            },
        }
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_DEADLINE": 1.5,
    }
    # 40 bytes a quarter of a second apart: 10 s in all, no silence near ARCHIVE_TIMEOUT (1 s).
    server.trickle_bytes, server.trickle_delay = 40, 0.25
    archived = record_signal(signals.media_archived)
    start = time.monotonic()

    [media] = archive(task_of("video", f"{server.url}/{route}/slow.mp4"))

    assert time.monotonic() - start < 4
    assert media.state == MediaState.PENDING  # retried later, as a timeout is
    assert media.last_error == "the download took longer than ARCHIVE_DEADLINE (1.5 s)"
    assert stored_files(tmp_path) == []
    assert archived.calls == []


# --- 5. no limit on outputs per notice ----------------------------------------------------


def previews(count: int) -> dict[str, Any]:
    videos = [
        {"videoUrl": f"https://aigc.s3.amazonaws.com/v/{n}.mp4", "coverUrl": f"https://x/{n}.jpg"}
        for n in range(count)
    ]
    return {"status": "success", "previewVideos": videos}


def test_round2_f5_a_notice_naming_thousands_of_outputs_makes_archive_max_files_rows(
    archive_settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    payload = notice_payload("M2V_PREVIEW", task_id="many", result=previews(5000))
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver_notice(payload).status_code == 200

    rows = ArchivedMedia.objects.filter(task__task_id="many")
    assert rows.count() == 50  # ARCHIVE_MAX_FILES' default
    # In the table's order: every video of the first 50, before any cover.
    assert set(rows.values_list("kind", flat=True)) == {"video"}


def test_round2_f5_the_task_page_lists_and_plays_a_bounded_number_of_files(
    archive_settings: Any, admin_client: Client
) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_MAX_FILES": 500,
    }
    task = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="big", status="success", result=previews(1000)
    )
    archiving.create_rows(task)

    html = admin_client.get(
        reverse("admin:topview_callbacks_submittedtask_change", args=[task.pk])
    ).content.decode()

    assert ArchivedMedia.objects.filter(task=task).count() == 500
    assert len(re.findall(r'id="archived_media-\d+"', html)) == 50
    assert html.count('class="topview-media-item"') == 50
    assert "1950 more outputs are not shown." in html
    assert "500 file(s): 500 pending. The list below shows the first 50." in html
    assert "The result names 2000 outputs; only the first 500 are archived" in html


# --- 12. hostile URLs and headers are refused once, not retried as storage errors ---------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:99999/ok/a.mp4", "not a valid URL"),
        ("http://[::1/ok/a.mp4", "not a valid URL"),
        ("{url}/redirect/a.mp4?to=http://[::1", "a redirect to an invalid URL"),
    ],
)
def test_round2_f12_an_invalid_url_or_port_is_refused_at_once(
    url: str, words: str, server: MediaServer, archive_settings: Any, caplog: Any
) -> None:
    [media] = archive(task_of("video", url.format(url=server.url)))

    assert media.state == MediaState.REFUSED
    assert words in media.last_error
    assert media.attempts == 1
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged


def test_round2_f12_an_unreadable_content_length_is_no_length(
    server: MediaServer, archive_settings: Any, caplog: Any
) -> None:
    [media] = archive(task_of("video", f"{server.url}/badlength/a.mp4"))

    assert media.state == MediaState.ARCHIVED
    assert media.size == ARCHIVED_SIZE
    assert not [r for r in caplog.records if r.exc_info]


# --- 13. 6to4 and Teredo addresses carrying private or metadata IPv4 -----------------------


@pytest.mark.parametrize(
    ("address", "allow_private", "words"),
    [
        ("2002:7f00:1::", False, "embeds 127.0.0.1"),  # 6to4 of loopback
        ("2002:a9fe:a9fe::", True, "embeds 169.254.169.254"),  # metadata, even when allowed
        ("2002:c0a8:1::1", False, "embeds 192.168.0.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, "embeds 192.0.2.45"),  # Teredo
    ],
)
def test_round2_f13_6to4_and_teredo_addresses_are_judged_by_what_they_carry(
    address: str, allow_private: bool, words: str
) -> None:
    refusal = address_refusal(address, allow_private=allow_private)

    assert refusal is not None and words in refusal
    assert address_refusal("2002:808:808::1", allow_private=False) is None  # 8.8.8.8
