"""testing.deliver_notice: Topview's route for the settings, on-commit callbacks run once."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from topview_callbacks import signals
from topview_callbacks.models import Notice, NoticeState
from topview_callbacks.testing import deliver_notice, notice_path, notice_payload

pytestmark = pytest.mark.django_db
TOKEN = "delivery-token-0123456789"


@pytest.fixture
def tokens(settings: Any) -> None:
    settings.TOPVIEW_CALLBACKS = {
        **settings.TOPVIEW_CALLBACKS,
        "NOTICE_TOKENS": [TOKEN, "second-token-0123456789"],
        "ACCOUNTS": {
            "brand-b": {"UID": "uid-b", "API_KEY": "k", "NOTICE_TOKENS": ["b-own-token-0123456"]}
        },
    }


def test_without_tokens_it_posts_to_the_plain_route() -> None:
    assert notice_path() == "/topview/notice/"
    assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200


def test_with_tokens_it_posts_to_the_token_route_of_the_uids_account(tokens: None) -> None:
    assert notice_path() == f"/topview/notice/{TOKEN}/"
    assert notice_path("uid-b") == "/topview/notice/b-own-token-0123456/"  # its own token
    assert deliver_notice(notice_payload("VOICE_CLONE")).status_code == 200
    assert deliver_notice(notice_payload("VOICE_CLONE"), uid="uid-b").status_code == 200


def test_a_wrong_uid_is_refused_for_its_uid_not_for_a_missing_token(tokens: None) -> None:
    response = deliver_notice(notice_payload("VOICE_CLONE"), uid="nobody")
    assert response.status_code == 403
    assert notice_path("nobody") == f"/topview/notice/{TOKEN}/"


def test_the_receivers_run_before_it_returns() -> None:
    deliver_notice(notice_payload("VOICE_CLONE", task_id="t-1"))
    assert Notice.objects.get(task_id="t-1").state == NoticeState.PROCESSED


def test_run_on_commit_false_leaves_the_receivers_side_effects_to_the_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    ran: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        transaction.on_commit(lambda: ran.append(kwargs["notice"].task_id))

    signals.task_outcome.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as captured:
            deliver_notice(notice_payload("VOICE_CLONE", task_id="t-1"), run_on_commit=False)
    finally:
        signals.task_outcome.disconnect(receiver)
    # Processed in the request (inline), its side effect still waiting for the commit.
    assert Notice.objects.get(task_id="t-1").state == NoticeState.PROCESSED
    assert ran == [] and len(captured) == 1


def test_an_enclosing_capture_does_not_run_the_callbacks_again(
    django_capture_on_commit_callbacks: Any,
) -> None:
    ran: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        transaction.on_commit(lambda: ran.append(kwargs["notice"].task_id))

    signals.task_outcome.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True) as captured:
            deliver_notice(notice_payload("VOICE_CLONE", task_id="t-1"))
    finally:
        signals.task_outcome.disconnect(receiver)
    assert ran == ["t-1"]
    assert captured == []
