from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from topview_callbacks import biz_types, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.exceptions import TopviewAPIError
from topview_callbacks.management.commands.topview_fake_server import build_server
from topview_callbacks.models import Notice, NoticeState, TaskStatus
from topview_callbacks.testing import FakeTopview, FakeTopviewServer, mock_topview

BASE = "https://api.topview.test"


# The responses-based fake ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("biz_type", sorted(set(biz_types.SPECS) - {"M2V_EXPORT", "M2V_SCRIPT"}))
def test_tasks_go_from_init_to_running_to_a_realistic_result(biz_type):
    with mock_topview() as fake:
        client = TopviewClient()
        task = client.submit(biz_type, prompt="x")
        assert task.notice_uuid == fake.task(task.task_id).notice_uuid
        assert biz_types.task_status(biz_type, client.query(biz_type, task.task_id)) == "init"
        assert biz_types.task_status(biz_type, client.query(biz_type, task.task_id)) == "running"
        fake.finish(task.task_id)
        result = client.query(biz_type, task.task_id)
    assert biz_types.task_status(biz_type, result) == "success"
    if biz_types.SPECS[biz_type].media:
        assert biz_types.media_urls(biz_type, result)


@pytest.mark.django_db
def test_callbacks_are_delivered_in_process_when_asked(
    record_signal, django_capture_on_commit_callbacks
):
    outcomes = record_signal(signals.voice_clone)
    with mock_topview() as fake:
        task = TopviewClient().submit("VOICE_CLONE", name="x")
        assert fake.deliver_callbacks() == 0  # still running
        fake.finish(task.task_id, "fail")
        with django_capture_on_commit_callbacks(execute=True):
            assert fake.deliver_callbacks() == 1
    notice = Notice.objects.get()
    assert (notice.uuid, notice.status, notice.state) == (
        task.notice_uuid,
        "fail",
        NoticeState.PROCESSED,
    )
    assert notice.result["errorMsg"]
    task.refresh_from_db()
    assert task.status == TaskStatus.FAIL
    assert len(outcomes.calls) == 1
    assert fake.stats["acked"] == 1


@pytest.mark.django_db
def test_without_notice_url_no_callback_and_no_notice_uuid():
    with mock_topview() as fake:
        task = TopviewClient().submit("VOICE_CLONE", notice_url=None, name="x")
        fake.finish(task.task_id)
        assert fake.pop_due() == []
    assert task.notice_uuid == ""


def test_check_notice_url_like_topview():
    with mock_topview():
        assert TopviewClient().check_notice_url("http://127.0.0.1:8080/notice") is True
        with pytest.raises(TopviewAPIError) as caught:
            TopviewClient().check_notice_url("not a url")
    assert caught.value.code == "4000"


def test_unknown_credentials_get_401():
    with mock_topview(accounts={"someone-else": "key"}), pytest.raises(TopviewAPIError) as caught:
        TopviewClient().credit()
    assert caught.value.code == "401"


def test_injected_failures_and_raw_answers():
    with mock_topview() as fake:
        fake.fail_next("/user/credit/detail", code="5003")
        with pytest.raises(TopviewAPIError) as caught:
            TopviewClient().credit()
        assert caught.value.retryable
        fake.fail_next(http_status=404, body="<html>gone</html>")
        with pytest.raises(TopviewAPIError) as caught:
            TopviewClient().credit()
        assert caught.value.http_status == 404
        assert TopviewClient().credit()["remainCredit"] == fake.credit


@pytest.mark.django_db
def test_out_of_credit():
    with mock_topview(credit=0), pytest.raises(TopviewAPIError) as caught:
        TopviewClient().submit("VOICE_CLONE", name="x")
    assert caught.value.out_of_credit


def test_upload_round_trip_and_storage_refuses_topview_headers(monkeypatch):
    monkeypatch.setattr(TopviewClient, "upload_check_interval", 0)
    with mock_topview() as fake:
        uploaded = TopviewClient().upload(io.BytesIO(b"12345"), file_format="mp4")
        assert fake.uploads[uploaded.file_id] == 5
        credential = TopviewClient().request(
            "GET", "/v1/upload/credential", params={"format": "png"}
        )
        answer = requests.put(
            credential["uploadUrl"], data=b"x", headers={"Authorization": "Bearer k"}
        )
        assert answer.status_code == 400
        with pytest.raises(TopviewAPIError):
            TopviewClient().upload(io.BytesIO(b"x"), file_format="exe")


@pytest.mark.django_db
def test_m2v_export_needs_a_finished_preview_and_reports_per_video():
    with mock_topview() as fake:
        client = TopviewClient()
        preview = client.submit("M2V_PREVIEW", productLink="https://shop/p")
        with pytest.raises(TopviewAPIError):
            client.export_m2v(preview.task_id)
        fake.finish(preview.task_id)
        export = client.export_m2v(preview.task_id)
        assert export.notice_uuid and export.notice_uuid != preview.notice_uuid
        result = client.query("M2V_EXPORT", export.task_id)
        assert biz_types.task_status("M2V_PREVIEW", result) == "success"
        assert biz_types.task_status("M2V_EXPORT", result) == "running"
        fake.finish(export.task_id, biz_type="M2V_EXPORT")
        result = client.query("M2V_EXPORT", export.task_id)
        assert biz_types.task_status("M2V_EXPORT", result) == "success"
        assert biz_types.media_urls("M2V_EXPORT", result)
        payload = fake.pop_due()[-1].payload
    assert payload["bizType"] == "M2V_EXPORT"


@pytest.mark.django_db
def test_replace_product_image_reports_task_status():
    with mock_topview() as fake:
        task = TopviewClient().submit("PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE", avatarId="a")
        fake.finish(task.task_id)
        result = TopviewClient().query("PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE", task.task_id)
    assert result["taskStatus"] == "success" and "status" not in result


def test_unknown_task_is_4004():
    with mock_topview(), pytest.raises(TopviewAPIError) as caught:
        TopviewClient().query("VOICE_CLONE", "nope")
    assert caught.value.code == "4004"


# The HTTP server -------------------------------------------------------------------------


class Receiver:
    """A bare HTTP endpoint on 127.0.0.1 that records POSTs and acknowledges them."""

    def __init__(self, ack: bool = True) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers.items()), body))
                uuid = json.loads(body)["uuid"]
                answer = {"code": "200", "message": "Success", "result": {"uuid": uuid}}
                data = json.dumps(answer if ack else {"code": "500"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/notice/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


def submit_over_http(server: FakeTopviewServer, receiver: Receiver, count: int = 1) -> list[str]:
    ids = []
    for _ in range(count):
        answer = requests.post(
            f"{server.url}/v1/voice/clone/task/submit",
            json={"name": "x", "noticeUrl": receiver.url},
            headers={"Topview-Uid": "uid-1", "Authorization": "Bearer key-1"},
            timeout=5,
        ).json()
        assert answer["code"] == "200"
        ids.append(answer["result"]["taskId"])
    return ids


def test_the_server_runs_tasks_and_posts_the_contracts_callback(receiver):
    fake = FakeTopview(accounts={"uid-1": "key-1"}, duration=(0.05, 0.1))
    with FakeTopviewServer(fake) as server:
        (task_id,) = submit_over_http(server, receiver)
        assert server.wait_idle(10)
    assert len(receiver.posts) == 1
    headers, body = receiver.posts[0]
    assert headers["Topview-Uid"] == "uid-1"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert list(payload) == ["uuid", "bizType", "taskId", "status", "errorMsg", "result"]
    assert (payload["bizType"], payload["taskId"], payload["status"]) == (
        "VOICE_CLONE",
        task_id,
        "success",
    )
    result = json.loads(payload["result"])  # a JSON string, as in the contract
    assert result["taskId"] == task_id and result["voice"]["demoAudioUrl"]
    assert fake.stats["acked"] == 1


def test_the_server_drops_and_duplicates_on_request(receiver):
    fake = FakeTopview(duration=(0.01, 0.05), drop=0.5, duplicate=0.5, seed=7, reorder=True)
    with FakeTopviewServer(fake) as server:
        submit_over_http(server, receiver, count=20)
        assert server.wait_idle(10)
    stats = fake.stats
    assert stats["callbacks"] == 20
    assert 0 < stats["dropped"] < 20 and stats["duplicated"] > 0
    assert len(receiver.posts) == 20 - stats["dropped"] + stats["duplicated"] == stats["sent"]


def test_the_server_records_unacknowledged_callbacks():
    refusing = Receiver(ack=False)
    try:
        fake = FakeTopview(duration=(0.01, 0.01))
        with FakeTopviewServer(fake) as server:
            submit_over_http(server, refusing)
            assert server.wait_idle(10)
    finally:
        refusing.close()
    assert (fake.stats["sent"], fake.stats["acked"]) == (1, 0)


def test_the_server_never_calls_a_non_loopback_notice_url():
    fake = FakeTopview(duration=(0.01, 0.01))
    with FakeTopviewServer(fake) as server:
        requests.post(
            f"{server.url}/v1/voice/clone/task/submit",
            json={"noticeUrl": "https://example.com/notice/"},
            headers={"Topview-Uid": "u", "Authorization": "Bearer k"},
            timeout=5,
        )
        assert server.wait_idle(10)
    assert fake.sent[0][1:] == (None, False)


def test_the_server_binds_loopback_only():
    with pytest.raises(ValueError):
        FakeTopviewServer(host="0.0.0.0")


# The command -------------------------------------------------------------------------------


def test_the_command_serves_then_stops_by_itself():
    out = StringIO()
    call_command("topview_fake_server", port=0, stop_after=0.3, stdout=out)
    assert "Fake Topview at http://127.0.0.1:" in out.getvalue()
    assert "Stopped. Tasks: 0" in out.getvalue()


@override_settings(TOPVIEW_CALLBACKS={"UID": "u1", "API_KEY": "k1", "API_BASE_URL": BASE})
def test_the_command_accepts_only_configured_credentials_by_default():
    options = {
        "host": "127.0.0.1",
        "port": 0,
        "duration": "1-2",
        "delay": "0",
        "fail_rate": 0.0,
        "drop": 0.3,
        "duplicate": 0.2,
        "reorder": True,
        "seed": 1,
        "any_credentials": False,
    }
    server = build_server(options)
    try:
        assert server.fake.accounts == {"u1": "k1"}
        assert (server.fake.duration, server.fake.drop) == ((1.0, 2.0), 0.3)
    finally:
        server.httpd.server_close()
    with pytest.raises(CommandError):
        build_server({**options, "drop": 2})
    with pytest.raises(CommandError):
        build_server({**options, "duration": "5-1"})
    with pytest.raises(CommandError):
        build_server({**options, "host": "10.0.0.1"})
