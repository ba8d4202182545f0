"""Who may deliver: accounts resolve by UID, and path tokens are checked."""

from __future__ import annotations

from django.test import override_settings

from topview_callbacks.auth import account_for_uid, token_is_valid

ACCOUNTS = {
    "UID": "u-default",
    "API_KEY": "k",
    "ACCOUNTS": {"brand": {"UID": "u-brand", "API_KEY": "kb"}},
}


def test_accounts_resolve_by_uid() -> None:
    with override_settings(TOPVIEW_CALLBACKS=ACCOUNTS):
        brand, default = account_for_uid("u-brand"), account_for_uid("u-default")
        assert brand is not None and brand.name == "brand"
        assert default is not None and default.name == "default"
        assert account_for_uid("u-other") is None
        assert account_for_uid("") is None
        assert account_for_uid("u-bran") is None  # a prefix is not a match


def test_without_tokens_only_the_tokenless_url_is_valid() -> None:
    with override_settings(TOPVIEW_CALLBACKS=ACCOUNTS):
        assert token_is_valid(None) is True
        assert token_is_valid("anything") is False


def test_with_tokens_only_a_configured_one_is_valid() -> None:
    tokens = ["a" * 24, "b" * 24]
    with override_settings(TOPVIEW_CALLBACKS={**ACCOUNTS, "NOTICE_TOKENS": tokens}):
        default, brand = account_for_uid("u-default"), account_for_uid("u-brand")
        assert token_is_valid("a" * 24, default) is True
        assert token_is_valid("b" * 24, default) is True
        assert token_is_valid(None, default) is False
        assert token_is_valid("a" * 23, default) is False
        assert token_is_valid("c" * 24, default) is False
        # The flat tokens are the default account's: "brand" has none, so the plain URL.
        assert token_is_valid("a" * 24, brand) is False
        assert token_is_valid(None, brand) is True
        assert token_is_valid("a" * 24) is True  # opens some account (the view's first check)
