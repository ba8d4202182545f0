from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
import requests
import responses
from django.test import override_settings
from django.utils import timezone
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError

from tests.support.settings import UID, UID_B
from topview_callbacks import __version__
from topview_callbacks.client import TopviewClient, UploadedFile
from topview_callbacks.exceptions import TopviewAPIError, TopviewConnectionError, TopviewError
from topview_callbacks.models import SubmittedTask, TaskStatus

BASE = "https://api.topview.test"
NOTICE_URL = "https://example.com/topview/notice/"


def ok(result: object) -> dict[str, object]:
    return {"code": "200", "message": "Success", "result": result}


@pytest.fixture
def api():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(TopviewClient, "retries", TopviewClient.retries.new(backoff_factor=0))


# Requests and the envelope ------------------------------------------------------------


def sent(api: responses.RequestsMock) -> Any:
    """The one request the client sent (``req_kwargs`` holds what requests was given)."""
    [call] = api.calls
    return call.request


def test_every_call_carries_the_accounts_headers_and_a_timeout(
    api: responses.RequestsMock,
) -> None:
    api.get(f"{BASE}/user/credit/detail", json=ok({"remainCredit": 12}))
    assert TopviewClient(timeout=7.5).credit() == {"remainCredit": 12}
    request = sent(api)
    assert request.headers["Topview-Uid"] == UID
    assert request.headers["Authorization"] == "Bearer sk-test-key"
    assert request.headers["User-Agent"] == f"topview-callbacks/{__version__}"
    assert request.req_kwargs["timeout"] == 7.5


def test_another_account_signs_with_its_own_credentials(api: responses.RequestsMock) -> None:
    api.get(f"{BASE}/user/credit/detail", json=ok({"remainCredit": 3}))
    assert TopviewClient("brand-b").credit() == {"remainCredit": 3}
    request = sent(api)
    assert request.headers["Topview-Uid"] == UID_B != UID
    assert request.headers["Authorization"] == "Bearer sk-brand-b"


@override_settings(TOPVIEW_CALLBACKS={"UID": "u", "API_KEY": "k", "REQUEST_TIMEOUT": 3})
def test_the_default_timeout_comes_from_settings(api: responses.RequestsMock) -> None:
    # No API_BASE_URL either: the client calls Topview's own API.
    api.get("https://api.topview.ai/user/credit/detail", json=ok({}))
    assert TopviewClient().credit() == {}
    request = sent(api)
    assert request.url == "https://api.topview.ai/user/credit/detail"
    assert request.req_kwargs["timeout"] == 3.0  # REQUEST_TIMEOUT's default is 30


@pytest.mark.parametrize(
    ("code", "retryable", "out_of_credit", "content_filtered"),
    [
        ("401", False, False, False),
        ("4000", False, False, False),
        ("4004", False, False, False),
        ("4007", True, False, False),
        ("4100", False, True, False),
        ("5000", True, False, False),
        ("5003", True, False, False),
        ("6001", False, False, True),
    ],
)
def test_business_errors_raise_with_code_message_and_retry_advice(
    api, code, retryable, out_of_credit, content_filtered
):
    api.get(f"{BASE}/user/credit/detail", json={"code": code, "message": "nope", "result": None})
    with pytest.raises(TopviewAPIError) as caught:
        TopviewClient().credit()
    error = caught.value
    assert (error.code, error.message, error.http_status) == (code, "nope", 200)
    assert error.retryable is retryable
    assert error.out_of_credit is out_of_credit
    assert error.content_filtered is content_filtered


def test_an_integer_code_200_is_read_as_success(api):
    api.get(f"{BASE}/user/credit/detail", json={"code": 200, "message": "ok", "result": 5})
    assert TopviewClient().credit() == 5


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (502, "<html>Bad gateway</html>", True),
        (200, "not json", False),
        (404, '{"error": "Not Found"}', False),
    ],
)
def test_answers_without_the_envelope_raise_api_errors(api, status, body, retryable):
    api.post(f"{BASE}/notice/notice_url/check", body=body, status=status)
    with pytest.raises(TopviewAPIError) as caught:
        TopviewClient().check_notice_url(NOTICE_URL)
    assert caught.value.http_status == status
    assert caught.value.retryable is retryable


def test_an_http_error_with_an_envelope_keeps_topviews_code(api):
    api.post(
        f"{BASE}/notice/notice_url/check",
        json={"code": "5000", "message": "boom", "result": None},
        status=500,
    )
    with pytest.raises(TopviewAPIError) as caught:
        TopviewClient().check_notice_url(NOTICE_URL)
    assert (caught.value.code, caught.value.http_status) == ("5000", 500)


@pytest.mark.parametrize(
    ("exception", "words"),
    [
        (requests.ConnectionError("refused"), "Could not reach Topview"),
        (requests.ReadTimeout("slow"), "did not answer"),
        (requests.ConnectTimeout("slow"), "did not answer"),
    ],
)
def test_network_errors_are_wrapped_with_the_cause_chained(api, exception, words):
    api.get(f"{BASE}/user/credit/detail", body=exception)
    with pytest.raises(TopviewConnectionError, match=words) as caught:
        TopviewClient().credit()
    assert caught.value.__cause__ is exception
    assert caught.value.retryable is True


def test_check_notice_url_posts_the_url(api):
    api.post(
        f"{BASE}/notice/notice_url/check",
        json=ok(True),
        match=[matchers.json_params_matcher({"noticeUrl": "https://x.example/n/"})],
    )
    assert TopviewClient().check_notice_url("https://x.example/n/") is True


# Retries -------------------------------------------------------------------------------


def test_a_get_is_retried_on_transient_http_errors(api, no_backoff):
    url = f"{BASE}/v1/voice/clone/task/query"
    api.get(url, status=503, body="busy")
    api.get(url, status=502, body="bad gateway")
    api.get(url, json=ok({"taskId": "t1", "status": "running"}))
    assert TopviewClient().query("VOICE_CLONE", "t1")["status"] == "running"
    assert len(api.calls) == 3


def test_a_get_gives_up_after_the_retries_and_raises(api, no_backoff):
    url = f"{BASE}/v1/voice/clone/task/query"
    for _ in range(4):
        api.get(url, status=503, body="busy")
    with pytest.raises(TopviewAPIError) as caught:
        TopviewClient().query("VOICE_CLONE", "t1")
    assert caught.value.http_status == 503
    assert len(api.calls) == 4


@pytest.mark.django_db
def test_a_submit_is_never_retried(api, no_backoff):
    api.post(f"{BASE}/v1/voice/clone/task/submit", status=503, body="busy")
    with pytest.raises(TopviewAPIError):
        TopviewClient().submit("VOICE_CLONE", name="x")
    assert len(api.calls) == 1
    assert not SubmittedTask.objects.exists()


def test_the_retry_policy_re_sends_gets_but_never_posts_after_a_connection_error():
    error = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    retry = TopviewClient.retries.increment(method="GET", url="/q", error=error)
    assert retry.total == TopviewClient.retries.total - 1
    with pytest.raises(MaxRetryError):
        TopviewClient.retries.increment(method="POST", url="/submit", error=error)


def test_a_session_you_pass_is_used_as_given(api):
    session = requests.Session()
    api.get(f"{BASE}/user/credit/detail", json=ok(1))
    client = TopviewClient(session=session)
    assert client.session is session
    assert client.credit() == 1
    assert session.headers["Topview-Uid"] == UID


# Submitting ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_submit_adds_notice_url_and_records_the_task(api):
    api.post(
        f"{BASE}/v1/voice/clone/task/submit",
        json=ok({"taskId": "t-1", "status": "success", "noticeUuid": "n-1"}),
        match=[
            matchers.json_params_matcher(
                {"originVoiceFileId": "f1", "name": "Ann", "noticeUrl": NOTICE_URL}
            )
        ],
    )
    before = timezone.now()
    task = TopviewClient().submit("VOICE_CLONE", originVoiceFileId="f1", name="Ann")
    task.refresh_from_db()
    assert (task.biz_type, task.task_id, task.notice_uuid) == ("VOICE_CLONE", "t-1", "n-1")
    assert task.account == "default"
    assert task.status == TaskStatus.SUBMITTED
    assert task.request_payload == {
        "originVoiceFileId": "f1",
        "name": "Ann",
        "noticeUrl": NOTICE_URL,
    }
    poll_after = timedelta(minutes=15)
    assert before + poll_after <= task.next_poll_at <= timezone.now() + poll_after


@pytest.mark.django_db
def test_m2v_preview_is_submitted_with_preview_true(api: responses.RequestsMock) -> None:
    api.post(f"{BASE}/v1/m2v/task/submit", json=ok({"taskId": "m-1", "noticeUuid": "n"}))
    task = TopviewClient().submit("M2V_PREVIEW", productLink="https://shop/p")
    assert json.loads(sent(api).body) == {
        "productLink": "https://shop/p",
        "preview": True,
        "noticeUrl": NOTICE_URL,
    }
    assert (task.biz_type, task.task_id) == ("M2V_PREVIEW", "m-1")


@pytest.mark.django_db
def test_submit_without_notice_url(api):
    api.post(
        f"{BASE}/v1/common_task/text2image/task/submit",
        json=ok({"taskId": "t-2", "noticeUuid": None}),
        match=[matchers.json_params_matcher({"prompt": "a cat"})],
    )
    task = TopviewClient().submit("COMMON_TASK_TEXT2IMAGE", notice_url=None, prompt="a cat")
    assert task.notice_uuid == ""


@pytest.mark.django_db
@override_settings(
    TOPVIEW_CALLBACKS={
        "UID": "u",
        "API_KEY": "k",
        "API_BASE_URL": BASE,
        "NOTICE_URL": "https://example.com/topview/notice/secret-token-0123456789/",
        "NOTICE_TOKENS": ["secret-token-0123456789"],
        "POLL_AFTER": {"default": 60, "VOICE_CLONE": 5},
    }
)
def test_the_stored_request_has_no_secrets_and_the_bizTypes_poll_delay(api):
    api.post(f"{BASE}/v1/voice/clone/task/submit", json=ok({"taskId": "t-3"}))
    task = TopviewClient().submit("VOICE_CLONE", name="x", apiKey="sk-secret")
    sent = json.loads(api.calls[0].request.body)
    assert sent["noticeUrl"].endswith("/secret-token-0123456789/")
    assert sent["apiKey"] == "sk-secret"
    assert task.request_payload == {
        "name": "x",
        "noticeUrl": "https://example.com/topview/notice/<token>/",
    }
    assert task.next_poll_at - task.submitted_at == timedelta(seconds=5)


@pytest.mark.django_db
def test_submit_of_an_unknown_biz_type_sends_nothing(api):
    with pytest.raises(TopviewError, match="Unknown bizType"):
        TopviewClient().submit("NEW_PRODUCT", x=1)


@pytest.mark.django_db
def test_a_success_without_task_id_raises(api):
    api.post(f"{BASE}/v1/voice/clone/task/submit", json=ok({"status": "success"}))
    with pytest.raises(TopviewAPIError, match="without a taskId"):
        TopviewClient().submit("VOICE_CLONE", name="x")


@pytest.mark.django_db
def test_a_callback_that_beat_the_submit_keeps_its_outcome(api):
    SubmittedTask.objects.create(
        biz_type="VOICE_CLONE", task_id="t-4", status=TaskStatus.SUCCESS, result={"a": 1}
    )
    api.post(f"{BASE}/v1/voice/clone/task/submit", json=ok({"taskId": "t-4", "noticeUuid": "n-4"}))
    task = TopviewClient().submit("VOICE_CLONE", name="x")
    task.refresh_from_db()
    assert (task.status, task.result, task.notice_uuid) == (TaskStatus.SUCCESS, {"a": 1}, "n-4")
    assert task.request_payload["name"] == "x"
    assert task.next_poll_at is None


@pytest.mark.django_db
def test_export_m2v_has_its_own_notice_url_and_task(api):
    api.post(
        f"{BASE}/v1/m2v/export",
        json=ok({"noticeUuid": "n-e"}),
        match=[
            matchers.json_params_matcher({"taskId": "m-1", "scriptId": 2, "noticeUrl": NOTICE_URL})
        ],
    )
    task = TopviewClient().export_m2v("m-1", script_id=2)
    assert (task.biz_type, task.task_id, task.notice_uuid) == ("M2V_EXPORT", "m-1", "n-e")


# Querying, credit and upload -------------------------------------------------------------


def test_query_asks_the_biz_types_endpoint(api):
    api.get(
        f"{BASE}/v1/product_avatar/task/image_replace/result",
        json=ok({"taskId": "t", "taskStatus": "success"}),
        match=[matchers.query_param_matcher({"taskId": "t", "needCloudFrontUrl": "true"})],
    )
    result = TopviewClient().query("PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE", "t", cloudfront=True)
    assert result["taskStatus"] == "success"


def test_query_of_an_unknown_biz_type_raises():
    with pytest.raises(TopviewError):
        TopviewClient().query("NEW_PRODUCT", "t")


def test_upload_takes_three_steps_and_sends_no_topview_headers_to_storage(api, monkeypatch):
    monkeypatch.setattr(TopviewClient, "upload_check_interval", 0)
    api.get(
        f"{BASE}/v1/upload/credential",
        json=ok(
            {"fileId": "f-1", "uploadUrl": "https://s3.test/b/f-1.mp4?sig=1", "fileName": "a.mp4"}
        ),
        match=[matchers.query_param_matcher({"format": "mp4"})],
    )
    api.put("https://s3.test/b/f-1.mp4?sig=1", body="")
    api.get(f"{BASE}/v1/upload/check", json=ok(False))
    api.get(
        f"{BASE}/v1/upload/check",
        json=ok(True),
        match=[matchers.query_param_matcher({"fileId": "f-1"})],
    )
    uploaded = TopviewClient().upload(io.BytesIO(b"video-bytes"), file_format="mp4")
    assert uploaded == UploadedFile("f-1", "a.mp4")
    put = api.calls[1].request
    assert "Authorization" not in put.headers
    assert "Topview-Uid" not in put.headers
    assert put.headers["Content-Type"] == "video/mp4"


def test_upload_of_a_path(api, tmp_path, monkeypatch):
    monkeypatch.setattr(TopviewClient, "upload_check_interval", 0)
    path = tmp_path / "face.PNG"
    path.write_bytes(b"png")
    api.get(
        f"{BASE}/v1/upload/credential",
        json=ok({"fileId": "f-2", "uploadUrl": "https://s3.test/f-2", "fileName": "f-2.png"}),
        match=[matchers.query_param_matcher({"format": "png"})],
    )
    api.put("https://s3.test/f-2", body="")
    api.get(f"{BASE}/v1/upload/check", json=ok(True))
    assert TopviewClient().upload(path).file_id == "f-2"


def test_upload_refused_by_storage_raises(api):
    api.get(
        f"{BASE}/v1/upload/credential", json=ok({"fileId": "f", "uploadUrl": "https://s3.test/f"})
    )
    api.put("https://s3.test/f", status=403, body="<Error>AccessDenied</Error>")
    with pytest.raises(TopviewAPIError) as caught:
        TopviewClient().upload(io.BytesIO(b"x"), file_format="jpg")
    assert caught.value.http_status == 403


def test_upload_that_never_becomes_visible_raises(api, monkeypatch):
    monkeypatch.setattr(TopviewClient, "upload_check_interval", 0)
    monkeypatch.setattr(TopviewClient, "upload_check_attempts", 2)
    api.get(
        f"{BASE}/v1/upload/credential", json=ok({"fileId": "f", "uploadUrl": "https://s3.test/f"})
    )
    api.put("https://s3.test/f", body="")
    api.get(f"{BASE}/v1/upload/check", json=ok(False))
    api.get(f"{BASE}/v1/upload/check", json=ok(False))
    with pytest.raises(TopviewError, match="after 2 checks"):
        TopviewClient().upload(io.BytesIO(b"x"), file_format="mp3")


def test_upload_without_a_format_raises_before_any_call(api):
    with pytest.raises(TopviewError, match="file_format"):
        TopviewClient().upload(io.BytesIO(b"x"))
