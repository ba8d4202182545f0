"""The admin as an operator uses it: Debian's Chromium driven by Playwright.

The project is served on 127.0.0.1 by pytest-django's ``live_server``; the browser may
only talk to it (every other request is answered locally or aborted, so nothing reaches
the internet). Without /usr/bin/chromium these tests skip, except in CI where they fail.

Set ``TOPVIEW_SCREENSHOTS=1`` to refresh the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import django.contrib.admin
import pytest
from django.contrib.auth.models import User
from django.urls import include, path, re_path
from django.views.static import serve

from topview_callbacks import processing
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import notice_payload

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CDN = "https://cdn.example.test"  # answered by the browser fixture, never fetched
PASSWORD = "browser-test-pw"

# This module is also the URLconf of its tests: the app's URLs plus the admin's CSS and JS
# (the test settings have no staticfiles app, and screenshots without CSS mislead).
urlpatterns = [
    re_path(
        r"^static/(?P<path>.*)$",
        serve,
        {"document_root": Path(django.contrib.admin.__file__).parent / "static"},
    ),
    path("", include("tests.urls")),
]


def png(width: int = 320, height: int = 180) -> bytes:
    """A small gradient PNG, so the cover preview shows a real image."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (40 + x * 180 // width, 90, 160 + y // 3))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + (chunk(b"IEND", b""))
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and os.environ.get("CI") != "true":
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    if os.environ.get("CI") == "true":
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    # Playwright's sync API runs an event loop in this thread for as long as the browser
    # lives; the ORM calls of these tests stay synchronous, so Django's guard against
    # sync calls in async code does not apply. Only for this module.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: Any, settings: Any) -> Any:
    """A logged-out page in a fresh context that can only reach the live server."""
    settings.ROOT_URLCONF = __name__
    settings.STATIC_URL = "/static/"
    context = browser.new_context(viewport={"width": 1700, "height": 900})
    cover = png()

    requested: list[str] = []

    def answer(route: Any) -> None:
        url = route.request.url
        requested.append(url)
        if url.startswith(live_server.url):
            route.continue_()
        elif url.startswith(CDN) and url.endswith((".jpg", ".png")):
            route.fulfill(status=200, content_type="image/png", body=cover)
        else:
            route.abort()

    context.route("**/*", answer)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.base_url = live_server.url
    page.requested = requested  # every URL the page asked for, in order
    yield page
    context.close()


def shoot(page: Any, name: str) -> None:
    if os.environ.get("TOPVIEW_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any) -> None:
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page.goto(page.base_url + "/admin/login/?next=/admin/topview_callbacks/notice/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/topview_callbacks/notice/")


def store(biz_type: str, **values: Any) -> Notice:
    payload = notice_payload(biz_type, task_id=values.pop("task_id", None))
    result = values.pop("result", None) or json.loads(payload["result"])
    fields = {
        "uuid": payload["uuid"],
        "biz_type": biz_type,
        "task_id": payload["taskId"],
        "status": "success",
        "result": result,
        "raw_body": json.dumps({**payload, "result": json.dumps(result)}),
        "headers": {"Content-Type": "application/json", "User-Agent": "Topview"},
        "remote_addr": "127.0.0.1",
        "state": NoticeState.PROCESSED,
    }
    fields.update(values)
    return Notice.objects.create(**fields)


def m2v_result(name: str) -> dict[str, Any]:
    return {
        "previewVideos": [
            {
                "scriptId": 0,
                "videoUrl": f"{CDN}/{name}.mp4",
                "coverUrl": f"{CDN}/{name}.jpg",
                "videoDuration": 36096,
            }
        ]
    }


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
