"""retrying.py: the backoff both queue wrappers (Celery and Django Tasks) wait between attempts."""

from __future__ import annotations

from django.test import override_settings

from topview_callbacks import retrying


def test_retry_delay_doubles_up_to_the_cap_without_jitter() -> None:
    with override_settings(
        TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 2, "RETRY_BACKOFF_MAX": 20, "RETRY_JITTER": False}
    ):
        assert [retrying.retry_delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 20, 20]


def test_retry_delay_jitter_stays_between_half_and_the_full_backoff() -> None:
    with override_settings(
        TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 8, "RETRY_BACKOFF_MAX": 600, "RETRY_JITTER": True}
    ):
        delays = [retrying.retry_delay(3) for _ in range(200)]
    assert all(16 <= delay <= 32 for delay in delays)
    assert len(set(delays)) > 100  # actually random, so failures don't retry in lockstep


def test_the_first_retry_waits_the_base_backoff() -> None:
    with override_settings(TOPVIEW_CALLBACKS={"RETRY_BACKOFF": 3, "RETRY_JITTER": False}):
        assert retrying.retry_delay(0) == retrying.retry_delay(1) == 3
