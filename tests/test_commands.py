"""Management commands: check_notice_url, topview_send_test_notice, topview_reprocess,
topview_process_pending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.support.settings import UID, UID_B, topview
from topview_callbacks import signals
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_payload

CHECK_URL = "https://api.topview.test/notice/notice_url/check"
ROOT = Path(__file__).resolve().parent.parent


def run(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@responses.activate
def test_check_notice_url_posts_notice_url_with_topview_headers() -> None:
    responses.post(CHECK_URL, json={"code": "200", "message": "Success", "result": True})
    output = run("check_notice_url")
    assert "accepted https://example.com/topview/notice/" in output
    sent = responses.calls[0].request
    assert json.loads(sent.body) == {"noticeUrl": "https://example.com/topview/notice/"}
    assert sent.headers["Topview-Uid"] == UID
    assert sent.headers["Authorization"] == "Bearer sk-test-key"
    assert sent.headers["User-Agent"].startswith("topview-callbacks/")


@responses.activate
def test_check_notice_url_takes_a_url_and_an_account() -> None:
    responses.post(CHECK_URL, json={"code": "200", "message": "Success", "result": None})
    run("check_notice_url", "https://other.example.com/n/", "--account", "brand-b")
    sent = responses.calls[0].request
    assert json.loads(sent.body) == {"noticeUrl": "https://other.example.com/n/"}
    assert sent.headers["Topview-Uid"] == UID_B


@responses.activate
@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (
            {"json": {"code": "4000", "message": "noticeUrl is illegal", "result": None}},
            ["4000", "illegal"],
        ),
        (
            {"json": {"code": "401", "message": "Unauthorized"}, "status": 401},
            ["401", "Unauthorized"],
        ),
        ({"body": "<html>bad gateway</html>", "status": 502}, ["502", "envelope"]),
        ({"body": requests.ConnectionError("refused")}, ["reach Topview"]),
        ({"body": requests.ReadTimeout("slow")}, ["did not answer"]),
    ],
)
def test_check_notice_url_refusals_are_one_line_errors(
    reply: dict[str, Any], words: list[str]
) -> None:
    responses.post(CHECK_URL, **reply)
    with pytest.raises(CommandError) as caught:
        run("check_notice_url")
    message = str(caught.value)
    assert "\n" not in message
    assert "did not accept" in message
    for word in words:
        assert word in message


TOKEN = "command-token-0123456789"
WITH_TOKEN = {
    "NOTICE_TOKENS": [TOKEN],
    "NOTICE_URL": f"https://example.com/topview/notice/{TOKEN}/",
}


@responses.activate
def test_check_notice_url_never_prints_the_path_token() -> None:
    responses.post(CHECK_URL, json={"code": "200", "message": "Success", "result": True})
    with topview(**WITH_TOKEN):
        output = run("check_notice_url")
    assert "accepted https://example.com/topview/notice/<token>/" in output
    assert TOKEN not in output
    assert json.loads(responses.calls[0].request.body)["noticeUrl"].endswith(f"/{TOKEN}/")


@responses.activate
def test_check_notice_url_refusal_quoting_the_url_never_prints_the_token() -> None:
    message = f"noticeUrl https://example.com/topview/notice/{TOKEN}/ is illegal"
    responses.post(CHECK_URL, json={"code": "4000", "message": message, "result": None})
    with topview(**WITH_TOKEN), pytest.raises(CommandError) as caught:
        run("check_notice_url")
    assert TOKEN not in str(caught.value)
    assert "notice/<token>/ is illegal" in str(caught.value)


def test_check_notice_url_exits_non_zero_without_a_traceback() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "TOPVIEW_API_BASE_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check_notice_url"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "Could not reach Topview" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_check_notice_url_without_any_url_says_what_to_set() -> None:
    config = {"UID": "u", "API_KEY": "k"}
    with (
        override_settings(TOPVIEW_CALLBACKS=config),
        pytest.raises(CommandError, match="NOTICE_URL"),
    ):
        run("check_notice_url")


@pytest.mark.django_db(transaction=True)
def test_send_test_notice_posts_a_realistic_notice_to_a_live_endpoint(
    live_server: Any, record_signal: Any
) -> None:
    fired = record_signal(signals.voice_text2voice)
    output = run(
        "topview_send_test_notice",
        "--biz-type",
        "VOICE_TEXT2VOICE",
        "--url",
        f"{live_server.url}/topview/notice/",
        "--task-id",
        "t-cmd",
    )
    assert "Sent VOICE_TEXT2VOICE notice" in output
    notice = Notice.objects.get(task_id="t-cmd")
    assert notice.state == NoticeState.PROCESSED
    assert notice.media()[0][0] == "audio"
    assert len(fired.calls) == 1


@pytest.mark.django_db(transaction=True)
def test_send_test_notice_reports_a_refusal(live_server: Any) -> None:
    with pytest.raises(CommandError, match="403"):
        run("topview_send_test_notice", "--url", f"{live_server.url}/topview/notice/x/")


def failing(sender: Any, **kwargs: Any) -> None:
    raise RuntimeError("still broken")


@pytest.mark.django_db(transaction=True)
def test_reprocess_by_uuid_and_failed_really_reruns_receivers(record_signal: Any) -> None:
    signals.task_outcome.connect(failing)
    try:
        for uuid in ("r-1", "r-2"):
            deliver_notice(notice_payload(uuid=uuid))
        assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.FAILED}
        with pytest.raises(CommandError, match="1 notice"):
            run("topview_reprocess", "r-1")
    finally:
        signals.task_outcome.disconnect(failing)
    fired = record_signal(signals.task_outcome)
    output = run("topview_reprocess", "--failed")
    assert "r-1: processed" in output and "r-2: processed" in output
    assert len(fired.calls) == 2
    assert Notice.objects.get(uuid="r-1").attempts == 1  # a replay has fresh attempts


@pytest.mark.django_db
def test_reprocess_needs_uuids_or_failed_and_names_unknown_ones() -> None:
    with pytest.raises(CommandError, match="--failed"):
        run("topview_reprocess")
    with pytest.raises(CommandError, match="no-such"):
        run("topview_reprocess", "no-such")


@pytest.mark.django_db(transaction=True)
def test_process_pending_command_processes_stored_notices(record_signal: Any) -> None:
    fired = record_signal(signals.task_outcome)
    with topview(PROCESSING="manual"):
        deliver_notice(notice_payload())
    assert "Processed 1 notice(s)." in run("topview_process_pending")
    assert len(fired.calls) == 1


@pytest.mark.django_db
def test_submit_records_a_task_with_notice_url_and_typed_params() -> None:
    from topview_callbacks.models import SubmittedTask
    from topview_callbacks.testing import mock_topview

    with mock_topview() as fake:
        output = run("topview_submit", "VOICE_CLONE", "name=Ann", "voiceSpeed=1.2", "voiceText=hi")
    task = SubmittedTask.objects.get()
    assert f"Submitted VOICE_CLONE task {task.task_id}" in output
    submitted = fake.tasks[("VOICE_CLONE", task.task_id)]
    assert submitted.params["name"] == "Ann" and submitted.params["voiceSpeed"] == 1.2
    assert submitted.notice_url == "https://example.com/topview/notice/"
    assert task.notice_uuid == submitted.notice_uuid != ""
    assert task.status == "submitted"


@pytest.mark.django_db(transaction=True)
def test_submit_enqueue_queues_copies_sent_under_the_cap() -> None:
    from topview_callbacks.models import SubmittedTask
    from topview_callbacks.testing import mock_topview

    with topview(MAX_UNFINISHED=2), mock_topview() as fake:
        output = run(
            "topview_submit", "VOICE_CLONE", "name=Ann", "--enqueue", "5", "--reference", "r"
        )
    assert "Queued 5 VOICE_CLONE task(s)." in output
    assert len(fake.tasks) == 2  # sent on commit, up to the cap
    assert SubmittedTask.objects.filter(reference="r", status="queued").count() == 3
    with pytest.raises(CommandError, match="at least 1"):
        run("topview_submit", "VOICE_CLONE", "--enqueue", "0")


def test_the_fake_server_takes_a_limit_and_lost_answers() -> None:
    from topview_callbacks.management.commands.topview_fake_server import Command, build_server
    from topview_callbacks.testing.fake.api import LostAnswer

    parser = Command().create_parser("manage.py", "topview_fake_server")
    options = vars(
        parser.parse_args(["--max-unfinished", "3", "--lose-answers", "2", "--port", "0"])
    )
    server = build_server(options)
    try:
        assert server.fake.max_unfinished == 3
        headers = {"Topview-Uid": UID, "Authorization": "Bearer sk-test-key"}
        path = "/v1/common_task/text2image/task/submit"
        for _ in range(2):
            with pytest.raises(LostAnswer):
                server.fake.handle("POST", path, headers, b'{"prompt": "x"}')
        _status, _headers, body = server.fake.handle("POST", path, headers, b'{"prompt": "y"}')
        assert json.loads(body)["code"] == "200" and len(server.fake.tasks) == 3
    finally:
        server.httpd.server_close()


@pytest.mark.django_db
def test_submit_without_notice_url_and_bad_params() -> None:
    from topview_callbacks.models import SubmittedTask
    from topview_callbacks.testing import mock_topview

    with pytest.raises(CommandError, match="key=value"):
        run("topview_submit", "VOICE_CLONE", "oops")
    with mock_topview() as fake:
        run("topview_submit", "VOICE_CLONE", "name=Ann", "--no-notice-url")
    task = SubmittedTask.objects.get()
    assert fake.tasks[("VOICE_CLONE", task.task_id)].notice_url is None
    assert task.notice_uuid == ""


@pytest.mark.django_db
def test_submit_reports_topview_refusals_in_one_line() -> None:
    with pytest.raises(CommandError, match="Unknown bizType"):
        run("topview_submit", "NOT_A_PRODUCT")


@responses.activate
@pytest.mark.parametrize(
    "command",
    [
        ["check_notice_url", "--account", "removed"],
        ["topview_submit", "VOICE_CLONE", "name=Ann", "--account", "removed"],
    ],
)
def test_an_unknown_account_is_reported_as_a_settings_mistake(command: list[str]) -> None:
    """Not as "Topview refused": nothing was sent to Topview at all."""
    with pytest.raises(CommandError) as caught:
        run(*command)
    message = str(caught.value)
    assert message.startswith("Check your settings:")
    assert "'removed'" in message and "ACCOUNTS" in message
    assert "refused" not in message and "did not accept" not in message
    assert len(responses.calls) == 0
