"""The endpoint's routes: each answers with and without its trailing slash.

A NOTICE_URL given to Topview without the slash must not meet APPEND_SLASH: its redirect
(301 with DEBUG off, a RuntimeError and 500 with DEBUG on) is not followed with a POST by
Topview, and every callback would be lost.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from tests.support.contract import deliver_contract_example as deliver
from tests.support.readme_site import CONTRACT_UID, contract_ack

TOKEN = "url-test-token-0123456789"
# A site as startproject makes it: CommonMiddleware, which does APPEND_SLASH.
WITH_COMMON_MIDDLEWARE = ["django.middleware.common.CommonMiddleware", *settings.MIDDLEWARE]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("url", ["/topview/notice/", "/topview/notice"])
def test_the_plain_route_answers_with_and_without_its_slash(url: str, debug: bool) -> None:
    with override_settings(
        DEBUG=debug,
        MIDDLEWARE=WITH_COMMON_MIDDLEWARE,
        APPEND_SLASH=True,
        TOPVIEW_CALLBACKS={"UID": CONTRACT_UID},
    ):
        response = deliver(url)
    assert response.status_code == 200
    assert response.content == contract_ack()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("url", [f"/topview/notice/{TOKEN}/", f"/topview/notice/{TOKEN}"])
def test_the_token_route_answers_with_and_without_its_slash(url: str, debug: bool) -> None:
    with override_settings(
        DEBUG=debug,
        MIDDLEWARE=WITH_COMMON_MIDDLEWARE,
        APPEND_SLASH=True,
        TOPVIEW_CALLBACKS={"UID": CONTRACT_UID, "NOTICE_TOKENS": [TOKEN]},
    ):
        response = deliver(url)
    assert response.status_code == 200
    assert response.content == contract_ack()


@pytest.mark.django_db
def test_a_wrong_token_without_the_slash_is_refused_like_with_it() -> None:
    with override_settings(TOPVIEW_CALLBACKS={"UID": CONTRACT_UID, "NOTICE_TOKENS": [TOKEN]}):
        assert deliver("/topview/notice/a-wrong-guess-0123456789").status_code == 403
        assert deliver("/topview/notice").status_code == 403  # tokens set: plain route refused


def test_reversing_gives_the_slashed_urls() -> None:
    assert reverse("topview_callbacks:notice") == "/topview/notice/"
    assert reverse("topview_callbacks:notice-with-token", args=[TOKEN]) == (
        f"/topview/notice/{TOKEN}/"
    )
    assert reverse("topview_callbacks:notice-no-slash") == "/topview/notice"
    assert reverse("topview_callbacks:notice-with-token-no-slash", args=[TOKEN]) == (
        f"/topview/notice/{TOKEN}"
    )
