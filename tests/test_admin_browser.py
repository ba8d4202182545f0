"""The admin as an operator uses it: Debian's Chromium driven by Playwright.

The browser and its offline pages: tests/support/browser.py. Without /usr/bin/chromium
these tests skip, except in CI where they fail. ``TOPVIEW_SCREENSHOTS=1`` refreshes the
screenshots in docs/screenshots/.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.support.browser import CDN, log_in, m2v_result, shoot, store
from topview_callbacks import processing
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus

pytestmark = pytest.mark.browser


def result_rows(page: Any) -> list[str]:
    return page.locator("#result_list tbody tr").all_inner_texts()


def test_log_in_filter_search_and_preview_media(page: Any) -> None:
    wanted = store("M2V_PREVIEW", task_id="m2v-task-1", result=m2v_result("preview-1"))
    store("VOICE_CLONE", task_id="voice-task-1", state=NoticeState.FAILED, status="fail")
    store("FUTURE_PRODUCT", task_id="future-task-1", result={"anything": True})
    store("M2V_EXPORT", task_id="export-task-1", source="poll")
    task = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW",
        task_id="m2v-task-1",
        status=TaskStatus.SUCCESS,
        result=wanted.result,
        submitted_at=wanted.received_at - timedelta(minutes=4, seconds=12),
        completed_at=wanted.received_at,
    )
    Notice.objects.filter(pk=wanted.pk).update(submitted_task=task)
    SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="voice-task-2")

    log_in(page)
    assert len(result_rows(page)) == 4
    shoot(page, "notices")

    page.click("#changelist-filter a[href='?biz_type=M2V_PREVIEW']")
    page.wait_for_url("**biz_type=M2V_PREVIEW")
    rows = result_rows(page)
    assert len(rows) == 1 and "m2v-task-1" in rows[0]
    # An unknown bizType is still offered.
    assert page.locator("#changelist-filter a[href='?biz_type=FUTURE_PRODUCT']").count() == 1

    page.goto(page.base_url + "/admin/topview_callbacks/notice/")
    page.fill("#searchbar", "voice-task-1")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=voice-task-1")
    rows = result_rows(page)
    assert len(rows) == 1 and "voice-task-1" in rows[0]

    page.goto(page.base_url + "/admin/topview_callbacks/notice/?q=m2v-task-1")
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_url(f"**/notice/{wanted.pk}/change/**")
    video = page.locator(".topview-media video")
    assert video.get_attribute("src") == f"{CDN}/preview-1.mp4"
    image = page.locator(".topview-media img")
    assert image.get_attribute("src") == f"{CDN}/preview-1.jpg"
    # Nothing from the notice's URLs was fetched on page load (finding 8): the sender of a
    # notice must not learn the operator's address, nor make their browser reach anything.
    page.wait_for_load_state("networkidle")
    assert [url for url in page.requested if url.startswith(CDN)] == []
    # The cover loads when the operator opens it (answered by the fixture: 320 px wide).
    page.click(".topview-media summary")
    page.wait_for_function("document.querySelector('.topview-media img').naturalWidth > 0")
    assert page.requested[-1] == f"{CDN}/preview-1.jpg"
    assert page.locator("text=open the task").count() == 1
    shoot(page, "notice_detail")

    page.click("text=open the task")
    page.wait_for_url(f"**/submittedtask/{task.pk}/change/")
    assert page.locator(".inline-group", has_text=wanted.uuid).count() == 1  # notices inline
    shoot(page, "task_detail")
    page.goto(page.base_url + "/admin/topview_callbacks/submittedtask/")
    assert len(result_rows(page)) == 2
    shoot(page, "tasks")


def test_reprocess_a_failed_notice(page: Any, failing_receiver: Any) -> None:
    notice = store("VOICE_CLONE", task_id="voice-failed-1", state=NoticeState.PENDING)
    processing.process_due(notice_id=notice.pk)
    notice.refresh_from_db()
    assert notice.state == NoticeState.FAILED
    store("M2V_PREVIEW", task_id="m2v-ok-1", result=m2v_result("ok-1"))

    log_in(page)
    page.goto(page.base_url + "/admin/topview_callbacks/notice/?state__exact=failed")
    page.check(f"#result_list input[name=_selected_action][value='{notice.pk}']")
    page.select_option("select[name=action]", "reprocess")
    page.click("button[name=index]")
    page.wait_for_selector("text=Yes, reprocess")
    assert page.locator(".topview-reprocess-list li").count() == 1
    shoot(page, "reprocess_confirm")

    failing_receiver.fixed = True
    calls = failing_receiver.calls
    page.click("input[value='Yes, reprocess']")
    message = page.locator("ul.messagelist li.success")
    message.wait_for()
    assert "voice-failed-1" in message.inner_text()
    assert "reprocessed, the receivers ran" in message.inner_text()
    assert failing_receiver.calls == calls + 1
    shoot(page, "reprocess_done")
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED


def test_script_and_javascript_urls_in_a_payload_stay_inert_text(page: Any) -> None:
    script = "<script>window.pwned = true; alert('pwned')</script>"
    notice = store(
        "M2V_PREVIEW",
        task_id=f"evil{script}",
        result={
            "title": script,
            "previewVideos": [
                {"videoUrl": "javascript:window.pwned=true", "coverUrl": "data:text/html,<b>x</b>"},
                {"videoUrl": f"{CDN}/ok.mp4", "coverUrl": f"javascript:alert('{script}')"},
            ],
        },
        error_message=script,
        last_error=f"Traceback (most recent call last):\nValueError: {script}",
        headers={"X-Evil": script},
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    log_in(page)
    page.goto(page.base_url + "/admin/topview_callbacks/notice/")
    assert page.locator("#result_list").get_by_text(f"evil{script}").count() == 1
    page.goto(page.base_url + f"/admin/topview_callbacks/notice/{notice.pk}/change/")
    content = page.locator("#content")
    assert content.get_by_text(script).count() >= 3  # error, result, headers, traceback...
    assert page.locator("#content pre", has_text="javascript:window.pwned=true").count() >= 1
    # Only the one http(s) video became a player; no unsafe URL reached an attribute.
    assert page.locator(".topview-media video").count() == 1
    assert page.locator(".topview-media img").count() == 0
    assert page.locator("[src^='javascript:'], [href^='javascript:'], [src^='data:']").count() == 0
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    shoot(page, "escaped_payload")
