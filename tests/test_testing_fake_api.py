"""``testing.fake.api``: ``FakeTopview`` behind ``requests`` with ``mock_topview()``."""

from __future__ import annotations

import io
import sys

import pytest
import requests

from topview_callbacks import biz_types, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.exceptions import TopviewAPIError
from topview_callbacks.models import Notice, NoticeState, TaskStatus
from topview_callbacks.testing import Chaos, FakeTopview, mock_topview

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


def test_mock_topview_without_responses_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "responses", None)
    expected = r"install the 'testing' extra, topview-callbacks\[testing\]"
    with pytest.raises(ImportError, match=expected), mock_topview():
        pass  # pragma: no cover


def test_options_by_keyword_or_as_chaos_are_the_same():
    by_keyword = FakeTopview(duration=(1, 2), drop=0.3, seed=4)
    assert by_keyword.chaos == Chaos(duration=(1, 2), drop=0.3, seed=4)
    mixed = FakeTopview(chaos=Chaos(drop=0.3, seed=4), duration=(1, 2))
    assert mixed.chaos == by_keyword.chaos
    with pytest.raises(TypeError):
        FakeTopview(dorp=0.3)
