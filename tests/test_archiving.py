"""archiving + downloads against a real HTTP server on 127.0.0.1 and a FileSystemStorage."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import responses
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from tests.support.archive import ARCHIVED_SIZE, archive, stored_files, task_with
from tests.support.media_server import MediaServer, body_for
from topview_callbacks import archive_names, archiving, signals
from topview_callbacks.models import ArchivedMedia, MediaState, SubmittedTask

pytestmark = pytest.mark.django_db
API = "https://api.topview.test"
QUERY = f"{API}/v1/common_task/text2video/task/query"
SIZE = ARCHIVED_SIZE


def answer_query(url: str) -> None:
    result = {"status": "success", "videos": [{"filePath": url}]}
    responses.get(QUERY, json={"code": "200", "message": "ok", "result": result})


def test_a_file_is_streamed_into_the_storage_with_its_hash_size_and_type(
    server: MediaServer, archive_settings: Any, tmp_path: Path, record_signal: Any
) -> None:
    archived = record_signal(signals.media_archived)
    task = task_with(f"{server.url}/ok/a.mp4?X-Amz-Signature=s")

    [media] = archive(task)

    body = body_for("a.mp4", SIZE)
    assert media.state == MediaState.ARCHIVED
    assert media.file.name == "topview/default/COMMON_TASK_TEXT2VIDEO/t1/video-0.mp4"
    assert media.file.read() == body
    assert (media.size, media.sha256) == (SIZE, hashlib.sha256(body).hexdigest())
    assert media.content_type == "video/mp4"
    assert stored_files(tmp_path) == ["media/topview/default/COMMON_TASK_TEXT2VIDEO/t1/video-0.mp4"]
    assert [c["media"].pk for c in archived.calls] == [media.pk]
    assert archived.calls[0]["task"] == task


def test_a_second_run_finds_the_file_done_and_fetches_nothing(
    server: MediaServer, archive_settings: Any
) -> None:
    task = task_with(f"{server.url}/ok/a.mp4")
    [media] = archive(task)

    assert archiving.archive_one(media.pk) is None
    assert archiving.create_rows(task) == 0
    assert server.hits["/ok/a.mp4"] == 1


@pytest.mark.parametrize("route", ["chunked", "slow"])
def test_chunked_and_slow_bodies_arrive_whole(
    route: str, server: MediaServer, archive_settings: Any
) -> None:
    [media] = archive(task_with(f"{server.url}/{route}/b.mp4"))

    assert media.state == MediaState.ARCHIVED
    assert media.sha256 == hashlib.sha256(body_for("b.mp4", SIZE)).hexdigest()


@pytest.mark.parametrize("route", ["ok", "chunked"])
def test_a_file_over_the_cap_is_refused_and_nothing_stays_in_the_storage(
    route: str, server: MediaServer, archive_settings: Any, tmp_path: Path, record_signal: Any
) -> None:
    failed = record_signal(signals.media_archive_failed)
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_MAX_BYTES": SIZE - 1,
    }
    [media] = archive(task_with(f"{server.url}/{route}/big.mp4"))

    assert media.state == MediaState.REFUSED
    assert "ARCHIVE_MAX_BYTES" in media.last_error
    assert media.file.name == ""
    assert stored_files(tmp_path) == []
    assert [c["state"] for c in failed.calls] == [MediaState.REFUSED]


def test_wrong_content_type_is_refused(server: MediaServer, archive_settings: Any) -> None:
    [media] = archive(task_with(f"{server.url}/html/page.mp4"))

    assert media.state == MediaState.REFUSED
    assert "text/html" in media.last_error


@responses.activate
def test_an_expired_url_is_refreshed_by_a_query_and_fetched_again(
    server: MediaServer, archive_settings: Any
) -> None:
    fresh = f"{server.url}/expiring/c.mp4?sig=fresh"
    answer_query(fresh)
    [media] = archive(task_with(f"{server.url}/expiring/c.mp4?sig=old"))

    assert media.state == MediaState.ARCHIVED
    assert media.source_url == fresh
    assert server.hits["/expiring/c.mp4"] == 2
    assert len(responses.calls) == 1


@responses.activate
def test_a_url_still_gone_after_the_query_is_expired(
    server: MediaServer, archive_settings: Any
) -> None:
    gone = f"{server.url}/missing/d.mp4"
    answer_query(gone + "?v=2")
    [media] = archive(task_with(gone))

    assert media.state == MediaState.EXPIRED
    assert "404" in media.last_error
    assert server.hits["/missing/d.mp4"] == 2


def test_a_5xx_is_retried_after_a_backoff_then_archived(
    server: MediaServer, archive_settings: Any
) -> None:
    task = task_with(f"{server.url}/flaky/e.mp4")
    [media] = archive(task)
    assert media.state == MediaState.PENDING
    assert media.attempts == 1 and "503" in media.last_error
    assert media.next_attempt_at is not None

    [media] = archive(task)  # RETRY_BACKOFF is 0 here: due at once

    assert media.state == MediaState.ARCHIVED
    assert media.attempts == 2
    assert media.last_error == ""


def test_network_errors_stop_at_max_attempts(server: MediaServer, archive_settings: Any) -> None:
    server.flaky_failures = 99
    task = task_with(f"{server.url}/flaky/f.mp4")
    for _ in range(5):
        archive(task)
    media = ArchivedMedia.objects.get(task=task)

    assert media.state == MediaState.FAILED
    assert media.attempts == 3
    assert server.hits["/flaky/f.mp4"] == 3


def test_a_server_that_stalls_times_out_and_leaves_no_partial_file(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    [media] = archive(task_with(f"{server.url}/stall/g.mp4"))

    assert media.state == MediaState.PENDING
    assert "timed out" in media.last_error.lower() or "broke off" in media.last_error
    assert stored_files(tmp_path) == []


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local or cloud metadata"),
        ("http://localhost:{port}/ok/h.mp4", "not in ARCHIVE_HOSTS"),
        ("https://evil.example/ok/h.mp4", "not in ARCHIVE_HOSTS"),
        ("{url}/loop/", "redirects"),
    ],
)
def test_redirects_are_checked_and_bounded(
    target: str, reason: str, server: MediaServer, archive_settings: Any
) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_HOSTS": ["127.0.0.1", "169.254.169.254"],
    }
    port = server.server_address[1]
    to = target.format(port=port, url=server.url)
    [media] = archive(task_with(f"{server.url}/redirect/h.mp4?to={to}"))

    assert media.state == MediaState.REFUSED
    assert reason in media.last_error
    assert server.hits["/ok/h.mp4"] == 0
    assert server.hits["/loop/"] in (0, 3)


def test_a_redirect_to_an_allowed_host_is_followed(
    server: MediaServer, archive_settings: Any
) -> None:
    [media] = archive(task_with(f"{server.url}/redirect/i.mp4?to=/ok/i.mp4"))

    assert media.state == MediaState.ARCHIVED
    assert media.sha256 == hashlib.sha256(body_for("i.mp4", SIZE)).hexdigest()


def test_loopback_http_and_foreign_hosts_are_refused_without_a_request(
    server: MediaServer, archive_settings: Any
) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_ALLOW_INSECURE": False,
    }
    loopback_https = server.url.replace("http://", "https://", 1)
    [media] = archive(task_with(f"{loopback_https}/ok/j.mp4"))
    assert media.state == MediaState.REFUSED
    assert "loopback or private" in media.last_error

    [media] = archive(task_with(f"{server.url}/ok/k.mp4", task_id="t2"))
    assert media.state == MediaState.REFUSED
    assert "only https" in media.last_error
    assert sum(server.hits.values()) == 0


def test_a_stale_claim_is_taken_over_and_its_partial_file_removed(
    server: MediaServer, archive_settings: Any, tmp_path: Path
) -> None:
    task = task_with(f"{server.url}/ok/l.mp4")
    media = ArchivedMedia.objects.get(task=task)
    storage = storages["default"]
    leftover = storage.save("topview/leftover.part", ContentFile(b"half"))
    ArchivedMedia.objects.filter(pk=media.pk).update(
        claim="dead", claimed_at=timezone.now() - timezone.timedelta(hours=1), partial_name=leftover
    )

    assert archiving.start_due() == 1

    media.refresh_from_db()
    assert media.state == MediaState.ARCHIVED
    assert stored_files(tmp_path) == ["media/topview/default/COMMON_TASK_TEXT2VIDEO/t1/video-0.mp4"]


def test_a_live_claim_is_left_alone(server: MediaServer, archive_settings: Any) -> None:
    task = task_with(f"{server.url}/ok/m.mp4")
    ArchivedMedia.objects.filter(task=task).update(claim="alive", claimed_at=timezone.now())

    assert archiving.start_due() == 0
    assert archive(task)[0].state == MediaState.PENDING
    assert server.hits["/ok/m.mp4"] == 0


def test_retry_given_up_makes_rows_pending_with_fresh_attempts(
    server: MediaServer, archive_settings: Any
) -> None:
    [media] = archive(task_with(f"{server.url}/html/n.mp4"))
    assert media.state == MediaState.REFUSED

    assert archiving.retry_given_up(ArchivedMedia.objects.all()) == 1
    media.refresh_from_db()
    assert (media.state, media.attempts) == (MediaState.PENDING, 0)


def test_names_from_a_notice_cannot_leave_their_folder(archive_settings: Any) -> None:
    task = SubmittedTask.objects.create(
        biz_type="COMMON_TASK_TEXT2VIDEO", task_id="../../etc/passwd", status="success"
    )
    media = ArchivedMedia(task=task, kind="video", index=0, source_url="https://x/a.exe/..")

    name = archive_names.target_name(media, ".mp4")

    folder = archive_names.component("../../etc/passwd")
    assert name == f"topview/default/COMMON_TASK_TEXT2VIDEO/{folder}/video-0.mp4"
    assert folder.startswith("_etc_passwd.") and "/" not in folder


def test_only_the_configured_kinds_get_rows(archive_settings: Any) -> None:
    archive_settings.TOPVIEW_CALLBACKS = {
        **archive_settings.TOPVIEW_CALLBACKS,
        "ARCHIVE_KINDS": ["image"],
    }
    task = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW",
        task_id="m2v",
        status="success",
        result={"previewVideos": [{"videoUrl": "https://a/v.mp4", "coverUrl": "https://a/c.jpg"}]},
    )

    assert archiving.create_rows(task) == 1
    assert list(ArchivedMedia.objects.values_list("kind", "index")) == [("image", 0)]
