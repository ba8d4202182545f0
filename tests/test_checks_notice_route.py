"""E014: a NOTICE_URL that reaches no notice route of the project is an error."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Tags
from django.test import override_settings

from tests.support.checks import GOOD, ours
from topview_callbacks.checks import check_notice_route

TOKEN = GOOD["NOTICE_TOKENS"][0]
E014 = "topview_callbacks.E014"


def e014(**settings: Any) -> list[str]:
    with override_settings(**settings):
        return [m.msg for m in ours(tags=[Tags.urls]) if m.id == E014]


@pytest.mark.parametrize(
    "url",
    [
        f"https://example.com/topview/notice/{TOKEN}/",
        f"https://example.com/topview/notice/{TOKEN}",  # no slash: the route answers too
        "https://example.com/topview/notice/",
        "https://example.com/topview/notice",
    ],
)
def test_a_notice_url_of_the_apps_routes_passes(url: str) -> None:
    assert e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": url}) == []


@pytest.mark.parametrize(
    "url",
    [
        f"https://example.com/callbacks/notice/{TOKEN}/",  # not the prefix of include()
        f"https://example.com/topview/notices/{TOKEN}/",  # a typo
        "https://example.com/admin/",  # another view of the project
        "https://example.com/topview/metrics/",  # another route of the app
        f"https://example.com/topview/notice/{TOKEN}/extra/",
    ],
)
def test_a_notice_url_that_reaches_no_notice_route_is_e014(url: str) -> None:
    (message,) = e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": url})
    assert "'default'" in message and "no route of topview_callbacks" in message


def test_the_message_never_shows_the_token() -> None:
    url = f"https://example.com/callbacks/notice/{TOKEN}/"
    (message,) = e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": url})
    assert TOKEN not in message
    assert "https://example.com/callbacks/notice/<token>/" in message


def test_each_account_is_checked() -> None:
    config = {
        **GOOD,
        "ACCOUNTS": {
            "brand-b": {"UID": "uid-b", "API_KEY": "k", "NOTICE_URL": "https://b.example/hooks/"}
        },
    }
    (message,) = e014(TOPVIEW_CALLBACKS=config)
    assert "'brand-b'" in message


def test_a_site_mounted_under_force_script_name_is_understood() -> None:
    url = f"https://example.com/app/topview/notice/{TOKEN}/"
    assert e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": url})  # the prefix is unknown
    assert not e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": url}, FORCE_SCRIPT_NAME="/app")
    assert not e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": url}, FORCE_SCRIPT_NAME="/app/")


def test_a_project_that_forgot_to_include_the_apps_urls_is_told() -> None:
    (message,) = e014(TOPVIEW_CALLBACKS=GOOD, ROOT_URLCONF="tests.test_checks_notice_route")
    assert "no route of topview_callbacks" in message


def test_a_urlconf_that_cannot_load_is_left_to_djangos_own_check() -> None:
    with override_settings(TOPVIEW_CALLBACKS=GOOD, ROOT_URLCONF="tests.no_such_urlconf"):
        assert check_notice_route() == []


def test_no_notice_url_or_a_malformed_one_is_left_to_other_checks() -> None:
    assert e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": ""}) == []
    assert e014(TOPVIEW_CALLBACKS={**GOOD, "NOTICE_URL": "ftp://example.com/n"}) == []


# This module is also a URLconf without the app's routes.
urlpatterns: list[Any] = []
