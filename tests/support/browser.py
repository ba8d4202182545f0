"""The admin in a real browser: Debian's Chromium driven by Playwright.

The project is served on 127.0.0.1 by pytest-django's ``live_server``; the browser may
only talk to it (every other request is answered locally or aborted, so nothing reaches
the internet). Without /usr/bin/chromium the tests using ``browser`` skip, except in CI
where they fail. tests/conftest.py lists this module in ``pytest_plugins``, so its
fixtures (``browser``, ``page``) serve every test module.

Set ``TOPVIEW_SCREENSHOTS=1`` to refresh the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django.contrib.admin
import pytest
from django.contrib.auth.models import User
from django.urls import include, path, re_path
from django.views.static import serve

from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import notice_payload

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
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CDN = "https://cdn.example.test"  # answered by the pages, never fetched
PASSWORD = "browser-test-pw"

# This module is also the URLconf of the browser tests: the app's URLs plus the admin's
# CSS and JS (the test settings have no staticfiles app, and screenshots without CSS
# mislead).
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
    """Chromium, once per test module."""
    if not Path(CHROMIUM).exists() and os.environ.get("CI") != "true":
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    if os.environ.get("CI") == "true":
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    # Playwright's sync API runs an event loop in this thread for as long as the browser
    # lives; the ORM calls of these tests stay synchronous, so Django's guard against
    # sync calls in async code does not apply. Only while the browser lives.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def offline_page(browser: Any, live_server: Any, settings: Any, width: int, height: int) -> Any:
    """A logged-out page of ``width`` x ``height`` in a new context of its own, which can
    only reach the live server: image URLs of ``CDN`` get ``png()``, anything else is
    aborted. ``page.requested`` lists every URL it asked for, in order. Close its
    ``page.context`` when done."""
    settings.ROOT_URLCONF = __name__
    settings.STATIC_URL = "/static/"
    context = browser.new_context(viewport={"width": width, "height": height})
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
    page.requested = requested
    return page


@pytest.fixture
def page(browser: Any, live_server: Any, settings: Any) -> Iterator[Any]:
    """``offline_page`` on a wide screen (1700x900)."""
    page = offline_page(browser, live_server, settings, 1700, 900)
    yield page
    page.context.close()


def shoot(page: Any, name: str, *, full_page: bool = True) -> None:
    """docs/screenshots/``name``.png, with TOPVIEW_SCREENSHOTS=1: the whole page, or only
    the screen."""
    if os.environ.get("TOPVIEW_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def log_in(page: Any) -> None:
    """Create a superuser and log in as it; ends on the notices' changelist."""
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page.goto(page.base_url + "/admin/login/?next=/admin/topview_callbacks/notice/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/topview_callbacks/notice/")


def store(biz_type: str, **values: Any) -> Notice:
    """A processed notice of ``biz_type`` as Topview would send it; ``values`` override
    its fields (``result`` its parsed result)."""
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
    """An M2V preview's result whose video and cover are ``name`` on ``CDN``."""
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
