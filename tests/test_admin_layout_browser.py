"""The admin on a 1400 px laptop screen (Chromium at 1400x900, Playwright).

Both changelists show the processing-state (or status) column without a horizontal
scroll, and long URLs in the archived-media inline are cut to one line, with the full
value on hover. ``TOPVIEW_SCREENSHOTS=1`` refreshes docs/screenshots/laptop_*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.support.browser import log_in, m2v_result, offline_page, shoot, store
from topview_callbacks.models import (
    ArchivedMedia,
    MediaState,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)

pytestmark = pytest.mark.browser
WIDTH, HEIGHT = 1400, 900
# What real rows look like: Topview's 32-character task ids, a long bizType, a named account.
LONG_TASK_ID = "5f0c6a7e9b2d4e1f8a3c7b6d2e9f1a0c"
LONG_URL = (
    "https://aigc.s3.amazonaws.com/topview/ai-video/2026/12/06/"
    "5f0c6a7e9b2d4e1f8a3c7b6d2e9f1a0c/output-video-final-export-1080p.mp4"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261206%2Fus-east-1"
)


@pytest.fixture
def laptop(browser: Any, live_server: Any, settings: Any) -> Iterator[Any]:
    """A page at 1400x900 that can only reach the live server."""
    page = offline_page(browser, live_server, settings, WIDTH, HEIGHT)
    yield page
    page.context.close()


def no_horizontal_scroll(page: Any) -> dict[str, int]:
    """Widths of the page and of the admin's results box (which scrolls on its own)."""
    return page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return {
                page: document.documentElement.scrollWidth,
                window: window.innerWidth,
                results: results.scrollWidth,
                box: results.clientWidth,
            };
        }"""
    )


def column_right_edge(page: Any, header_class: str) -> float:
    box = page.locator(f"#result_list thead th.{header_class}").bounding_box()
    return float(box["x"] + box["width"])


def many_rows() -> SubmittedTask:
    now = timezone.now()
    task = None
    for n in range(8):
        biz_type = ("PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE", "COMMON_TASK_VIDEO2AIAVATAR")[n % 2]
        task_id = f"{LONG_TASK_ID[:-2]}{n:02d}"
        store(
            biz_type,
            task_id=task_id,
            account="brand-b-marketing-eu",
            state=(NoticeState.PROCESSED, NoticeState.FAILED)[n % 2],
            result=m2v_result(f"v{n}"),
        )
        task = SubmittedTask.objects.create(
            biz_type=biz_type,
            task_id=task_id,
            account="brand-b-marketing-eu",
            status=(TaskStatus.SUCCESS, TaskStatus.SUBMITTED)[n % 2],
            submitted_at=now - timedelta(hours=3, minutes=n),
            completed_at=now if n % 2 == 0 else None,
            poll_count=n,
            next_poll_at=now + timedelta(minutes=15) if n % 2 else None,
        )
    assert task is not None
    return task


@pytest.mark.parametrize(
    ("screen", "column"),
    [("notice", "column-coloured_state"), ("submittedtask", "column-coloured_status")],
    ids=["notices", "tasks"],
)
@pytest.mark.django_db(transaction=True)
def test_the_state_column_is_visible_without_scrolling(
    laptop: Any, screen: str, column: str
) -> None:
    many_rows()
    log_in(laptop)
    laptop.goto(f"{laptop.base_url}/admin/topview_callbacks/{screen}/")
    shoot(laptop, f"laptop_{'notices' if screen == 'notice' else 'tasks'}", full_page=False)
    widths = no_horizontal_scroll(laptop)
    assert widths["page"] <= widths["window"], widths
    assert widths["results"] <= widths["box"], widths
    assert column_right_edge(laptop, column) <= WIDTH


@pytest.mark.django_db(transaction=True)
def test_long_urls_in_the_media_inline_are_one_line_with_the_full_value_on_hover(
    laptop: Any,
) -> None:
    task = many_rows()
    ArchivedMedia.objects.create(
        task=task, kind="video", index=0, source_url=LONG_URL, state=MediaState.PENDING
    )
    log_in(laptop)
    laptop.goto(f"{laptop.base_url}/admin/topview_callbacks/submittedtask/{task.pk}/change/")
    source = laptop.locator(".topview-url").first
    source.scroll_into_view_if_needed()
    box = source.bounding_box()
    line_height = laptop.evaluate(
        "(e) => parseFloat(getComputedStyle(e).lineHeight) || 20", source.element_handle()
    )
    assert box["height"] <= 2 * line_height  # one line, not one character per line
    assert box["width"] > 200
    assert source.get_attribute("title") == LONG_URL
    assert laptop.evaluate("document.documentElement.scrollWidth") <= WIDTH
    shoot(laptop, "laptop_task_media", full_page=False)
