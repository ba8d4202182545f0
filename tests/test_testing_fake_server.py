"""``testing.fake.server``: ``FakeTopviewServer`` over real HTTP, and its command."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.support.magic import MAGIC
from topview_callbacks import biz_types
from topview_callbacks.management.commands.topview_fake_server import build_server
from topview_callbacks.testing import FakeTopview, FakeTopviewServer

BASE = "https://api.topview.test"


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
        assert (server.fake.chaos.duration, server.fake.chaos.drop) == ((1.0, 2.0), 0.3)
    finally:
        server.httpd.server_close()
    with pytest.raises(CommandError):
        build_server({**options, "drop": 2})
    with pytest.raises(CommandError):
        build_server({**options, "duration": "5-1"})
    with pytest.raises(CommandError):
        build_server({**options, "host": "10.0.0.1"})


# The media files its results name ---------------------------------------------------------

HEADERS = {"Topview-Uid": "u", "Authorization": "Bearer k"}


@pytest.mark.parametrize(
    "biz_type",
    sorted(b for b, spec in biz_types.SPECS.items() if spec.media and b != "M2V_EXPORT"),
)
def test_results_name_files_the_server_serves(biz_type: str) -> None:
    fake = FakeTopview()
    with FakeTopviewServer(fake) as server:
        task = fake.runner.submit(biz_type, {}, "u")
        fake.finish(task.task_id)
        spec = biz_types.SPECS[biz_type]
        answer = requests.get(
            f"{server.url}{spec.query_path}", params={"taskId": task.task_id}, headers=HEADERS
        ).json()
        urls = biz_types.media_urls(biz_type, answer["result"])
        assert urls
        for kind, url in urls:
            assert url.startswith(f"{server.url}/media/{biz_type}/{task.task_id}/{kind}-")
            response = requests.get(url, timeout=5)  # no credentials: presigned-style
            content_type = response.headers["Content-Type"]
            assert response.status_code == 200 and content_type.startswith(f"{kind}/")
            assert response.content.startswith(MAGIC[content_type])
            assert int(response.headers["Content-Length"]) == len(response.content) > 0


def test_the_callback_names_the_same_files(receiver):
    fake = FakeTopview(duration=(0.01, 0.02))
    with FakeTopviewServer(fake) as server:
        (task_id,) = submit_over_http(server, receiver)
        assert server.wait_idle(10)
        result = json.loads(json.loads(receiver.posts[0][1])["result"])
        [(_, url)] = biz_types.media_urls("VOICE_CLONE", result)
        assert url == f"{server.url}/media/VOICE_CLONE/{task_id}/audio-0.mp3"
        assert requests.get(url, timeout=5).content.startswith(MAGIC["audio/mpeg"])


def test_unknown_media_is_a_404_and_serve_media_off_keeps_the_cdn():
    fake = FakeTopview()
    with FakeTopviewServer(fake) as server:
        task = fake.runner.submit("VOICE_CLONE", {}, "u")
        for path in (
            "/media/VOICE_CLONE/nope/audio-0.mp3",
            f"/media/M2V_PREVIEW/{task.task_id}/audio-0.mp3",
            f"/media/VOICE_CLONE/{task.task_id}/audio-0.exe",
        ):
            assert requests.get(server.url + path, timeout=5).status_code == 404
    with FakeTopviewServer(FakeTopview(), serve_media=False) as server:
        task = server.fake.runner.submit("VOICE_CLONE", {}, "u")
        assert task.output["voice"]["demoAudioUrl"].startswith("https://aigc.s3.amazonaws.com/")
        path = f"/media/VOICE_CLONE/{task.task_id}/audio-0.mp3"
        answer = requests.get(server.url + path, timeout=5)  # the API's, not a file
        assert answer.headers["Content-Type"] == "application/json"
