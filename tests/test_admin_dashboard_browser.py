"""The pipeline dashboard in Debian's Chromium: charts render, links filter, payloads stay text.

The browser and its offline pages: tests/support/browser.py.
``TOPVIEW_SCREENSHOTS=1`` refreshes docs/screenshots/dashboard*.png.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from tests.support.browser import log_in, shoot
from tests.support.settings import topview
from topview_callbacks.models import Notice, NoticeState, SubmittedTask
from topview_callbacks.testing import deliver_notice, mock_topview, notice_payload

pytestmark = pytest.mark.browser
HOSTILE = "<script>window.pwned=true</script><img src=x onerror=alert(1)>"


def fill() -> None:
    now = timezone.now()
    for n in range(60):
        state = NoticeState.FAILED if n % 10 == 0 else NoticeState.PROCESSED
        Notice.objects.create(
            uuid=f"d-{n}",
            biz_type="M2V_PREVIEW",
            task_id=f"d-task-{n}",
            status="success",
            state=state,
            received_at=now - timedelta(hours=n * 2.5),
            last_error=f"Traceback ...\nValueError: {HOSTILE}" if state == "failed" else "",
        )
    Notice.objects.create(
        uuid="d-pending",
        biz_type=HOSTILE,
        task_id=HOSTILE,
        status="success",
        received_at=now - timedelta(minutes=40),
    )
    for n in range(30):
        SubmittedTask.objects.create(
            biz_type="M2V_PREVIEW" if n % 3 else HOSTILE,
            task_id=f"t-{n}",
            status="success" if n % 5 else "fail",
            submitted_at=now - timedelta(hours=3),
            completed_at=now - timedelta(hours=3) + timedelta(minutes=2 + n * 5),  # all past
            cost_credit=Decimal("1.5") if n % 5 else None,  # what a success costs
        )
    SubmittedTask.objects.create(
        biz_type="M2V_EXPORT", task_id="overdue-1", next_poll_at=now - timedelta(hours=2)
    )
    SubmittedTask.objects.create(
        biz_type="M2V_EXPORT", task_id="not-yet", next_poll_at=now + timedelta(hours=2)
    )
    # A site whose UID is misconfigured: Topview calls with the path token and another UID.
    token = "dashboard-token-0123456789"
    with topview(NOTICE_TOKENS=[token]):
        for _ in range(4):
            deliver_notice(
                notice_payload("VOICE_CLONE"),
                uid="uid-from-another-account",
                path=f"/topview/notice/{token}/",
            )


def test_the_dashboard_charts_links_and_hostile_strings(page: Any) -> None:
    fill()
    cache.clear()  # the credit another test cached
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page)
    with mock_topview(credit=875.0):
        page.click("a.topview-dashboard-link")
        page.wait_for_url("**/notice/dashboard/")
    assert page.locator("h1").inner_text() == "Topview pipeline"
    # The charts rendered as SVG with visible bars, titled for screen readers.
    hourly, turnaround, spend = page.locator("svg.topview-chart").all()
    assert spend.locator("title").first.text_content().startswith("Credits spent per day")
    assert hourly.locator("rect").count() >= 40 and turnaround.locator("rect").count() >= 3
    assert page.locator(".spend-default").inner_text() == "default 36"  # 24 successes at 1.5
    assert hourly.bounding_box()["width"] > 500
    assert hourly.locator("title").first.text_content().startswith("Notices per hour")
    reason = "wrong_uid_known_sender"
    assert page.locator(f"#rejections .reason-{reason}").inner_text().split("\t")[:3] == [
        reason,
        "403",
        "4",
    ]
    assert "CRITICAL" in page.locator(".finding-rejected_deliveries").inner_text()
    assert page.locator(".credit-default").inner_text() == "default: 875"
    # Hostile strings are shown as text, nowhere as markup.
    assert page.locator("#failure-reasons").get_by_text(f"ValueError: {HOSTILE}").count() == 1
    # A bizType this version does not know is "other" there (a row per value is unbounded).
    assert page.locator("#biz-types").get_by_text(HOSTILE).count() == 0
    assert page.locator("#biz-types .biz-other").count() == 1
    assert page.evaluate("window.pwned") is None and dialogs == []
    shoot(page, "dashboard")
    page.emulate_media(color_scheme="dark")
    shoot(page, "dashboard_dark")
    page.emulate_media(color_scheme="light")

    page.click(".card.state-failed")
    page.wait_for_url("**state__exact=failed")
    assert page.locator("#result_list tbody tr").count() == 6
    page.go_back()
    page.click("#failed-24h")
    page.wait_for_url("**received_at__gte=**")
    assert page.locator("#result_list tbody tr").count() == 1  # 0 h ago; the next is 25 h ago
    page.go_back()
    page.click("#overdue")
    page.wait_for_url("**next_poll_at__lt=**")
    rows = page.locator("#result_list tbody tr").all_inner_texts()
    assert len(rows) == 1 and "overdue-1" in rows[0]
    page.go_back()
    page.click("#oldest-pending")
    page.wait_for_url("**/change/")
    assert page.locator("#content").get_by_text("d-pending").count() >= 1
