"""retrying.py: the backoff between attempts, and when attempts stop."""

from __future__ import annotations

import pytest
from django.test import override_settings

from topview_callbacks import retrying


def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Equal jitter takes half the backoff plus a random part up to the other half.
    monkeypatch.setattr(retrying.random, "uniform", lambda low, high: high)


def test_retry_delay_doubles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    no_jitter(monkeypatch)
    with override_settings(TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 2, "RETRY_BACKOFF_MAX": 20}):
        assert [retrying.retry_delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 20, 20]


def test_retry_delay_jitter_stays_between_half_and_the_full_backoff() -> None:
    with override_settings(TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 8, "RETRY_BACKOFF_MAX": 600}):
        delays = [retrying.retry_delay(3) for _ in range(200)]
    assert all(16 <= delay <= 32 for delay in delays)
    assert len(set(delays)) > 100  # actually random, so failures don't retry in lockstep


def test_the_first_retry_waits_the_base_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    no_jitter(monkeypatch)
    with override_settings(TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 3}):
        assert retrying.retry_delay(0) == retrying.retry_delay(1) == 3


def test_retries_stop_once_max_attempts_are_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    no_jitter(monkeypatch)
    with override_settings(TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 1, "MAX_ATTEMPTS": 3}):
        assert [retrying.retry_in(n) for n in range(1, 5)] == [1, 2, None, None]
