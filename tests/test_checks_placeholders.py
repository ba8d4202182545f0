"""W008: the documented development placeholders, reported by ``check --deploy`` only."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import CheckMessage, run_checks
from django.test import override_settings

from tests.support.checks import GOOD

W008 = "topview_callbacks.W008"


def w008(deploy: bool = True, **config: Any) -> list[CheckMessage]:
    with override_settings(TOPVIEW_CALLBACKS={**GOOD, **config}):
        found = run_checks(include_deployment_checks=deploy, databases=[])
    return [message for message in found if message.id == W008]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"UID": "insecure-dev-uid"}, "UID"),
        ({"API_KEY": "insecure-dev-api-key"}, "API_KEY"),
        (
            {
                "NOTICE_TOKENS": ["insecure-dev-notice-token"],
                "NOTICE_URL": "https://a.example/topview/notice/insecure-dev-notice-token/",
            },
            "NOTICE_TOKENS, NOTICE_URL",
        ),
    ],
)
def test_a_placeholder_left_in_is_w008_with_deploy(config: dict[str, Any], key: str) -> None:
    (message,) = w008(**config)
    assert f"in {key}." in message.msg
    assert "insecure-dev" not in message.msg  # names the keys, never the values


def test_real_values_pass() -> None:
    assert w008() == []


def test_plain_check_stays_quiet_on_a_development_site() -> None:
    assert w008(deploy=False, UID="insecure-dev-uid") == []


def test_each_account_is_named() -> None:
    accounts = {"brand-b": {"UID": "insecure-b", "API_KEY": "k"}}
    (message,) = w008(ACCOUNTS=accounts)
    assert "'brand-b'" in message.msg
