"""Settings are read fresh on every access and accounts resolve by UID."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tests.support.settings import topview
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import TopviewConfigurationError, TopviewError


def test_defaults_apply_and_override_settings_is_seen_at_once() -> None:
    with override_settings(TOPVIEW_CALLBACKS={"UID": "u"}):
        assert topview_settings.api_base_url == "https://api.topview.ai"
        assert topview_settings.processing == "inline"
        assert topview_settings.max_body_size == 2 * 1024 * 1024
        with override_settings(TOPVIEW_CALLBACKS={"UID": "u", "API_BASE_URL": "http://x/"}):
            assert topview_settings.api_base_url == "http://x"
        assert topview_settings.api_base_url == "https://api.topview.ai"


def test_accounts_inherit_the_notice_url() -> None:
    config = {
        "UID": "u-default",
        "API_KEY": "k",
        "NOTICE_URL": "https://example.com/n/",
        "ACCOUNTS": {"brand": {"UID": "u-brand", "API_KEY": "kb"}},
    }
    with override_settings(TOPVIEW_CALLBACKS=config):
        assert topview_settings.account("brand").notice_url == "https://example.com/n/"
        assert topview_settings.account("brand").uid == "u-brand"


def test_a_missing_account_raises_an_error_that_says_what_to_set() -> None:
    with override_settings(TOPVIEW_CALLBACKS={}):
        with pytest.raises(TopviewConfigurationError, match=r"TOPVIEW_CALLBACKS\['UID'\]"):
            topview_settings.account()
        with pytest.raises(TopviewConfigurationError, match="ACCOUNTS"):
            topview_settings.account("nope")


def test_a_configuration_error_is_not_a_topview_api_error() -> None:
    """``except TopviewError`` (Topview failed, retry later) must never hide a settings mistake."""
    assert issubclass(TopviewConfigurationError, ImproperlyConfigured)
    assert not issubclass(TopviewConfigurationError, TopviewError)


def test_max_unfinished_is_flat_and_per_account() -> None:
    accounts = {"b": {"UID": "u-b", "MAX_UNFINISHED": 3}, "c": {"UID": "u-c"}}
    with topview(MAX_UNFINISHED=7, ACCOUNTS=accounts):
        assert topview_settings.account().max_unfinished == 7
        assert topview_settings.account("b").max_unfinished == 3
        assert topview_settings.account("c").max_unfinished == 7
    with topview(ACCOUNTS={}):
        assert topview_settings.account().max_unfinished == 10
