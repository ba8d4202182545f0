"""The retry policy shared by the queue wrappers (Celery's ``tasks`` and ``tasks_framework``).

Attempts are counted on the notice (``Notice.attempts``), not in a message, so a lost or
repeated message never resets them. This module says how long to wait and logs each
attempt's outcome the same way for every queue. It imports no queue, so either wrapper can
use it without the other's framework installed.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from topview_callbacks import processing
from topview_callbacks.conf import topview_settings
from topview_callbacks.models import Notice, NoticeState


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts: exponential, capped, jittered.

    The one backoff of the package: notices retried by a queue, media downloads retried by
    archiving (RETRY_BACKOFF, RETRY_BACKOFF_MAX, RETRY_JITTER).
    """
    delay = min(
        topview_settings.retry_backoff * 2.0 ** max(attempts - 1, 0),
        topview_settings.retry_backoff_max,
    )
    if topview_settings.retry_jitter:
        # "Equal jitter": at least half the backoff, so retries never come back at once.
        return delay / 2 + random.uniform(0, delay / 2)
    return delay


def attempt(notice_id: int) -> Notice | None:
    """``processing.process_notice`` as a queue's job runs it: it also takes over a notice
    whose worker died (processing for ``SWEEP_AFTER``), and a failed one with attempts left
    (this job is its retry, or the sweep's restart of a retry that never came)."""
    return processing.process_notice(
        notice_id,
        stale_after=timedelta(seconds=topview_settings.sweep_after),
        retry_failed_below=topview_settings.max_attempts,
    )


def after_attempt(
    notice_id: int,
    notice: Notice | None,
    *,
    runner: str,
    fields: dict[str, Any],
    logger: logging.Logger,
) -> float | None:
    """Log what one run of ``processing.process_notice`` did; the seconds to wait before the
    next attempt, or None when there is none to make.

    ``notice`` is what ``process_notice`` returned (None: not claimed). ``runner`` names the
    queue's job in the message ("celery task <id>"), ``fields`` its ``extra=`` fields.
    """
    if notice is None:
        logger.info(
            "Topview notice id=%s not claimed: already done, or another worker has it [%s]",
            notice_id,
            runner,
            extra={"topview_notice_id": notice_id, **fields},
        )
        return None
    extra = {**notice.log_context(), **fields}
    described = (
        f"Topview notice {notice.uuid} ({notice.biz_type} {notice.task_id}, "
        f"account {notice.account}) [{runner}]"
    )
    if notice.state != NoticeState.FAILED:
        logger.info("%s: %s", described, notice.state, extra=extra)
        return None
    if notice.attempts < topview_settings.max_attempts:
        delay = retry_delay(notice.attempts)
        logger.warning(
            "%s: attempt %s of %s failed; retry in %.1fs",
            described,
            notice.attempts,
            topview_settings.max_attempts,
            delay,
            extra=extra,
        )
        return delay
    logger.error(
        "%s: failed %s times; giving up. Replay it from the admin or `topview_reprocess`.",
        described,
        notice.attempts,
        extra=extra,
    )
    return None


def after_database_error(
    notice_id: int,
    error: Exception,
    retries: int,
    *,
    runner: str,
    fields: dict[str, Any],
    logger: logging.Logger,
) -> float | None:
    """The database was unreachable while ``retries`` retries had been made: the seconds to
    wait before trying again, or None to give up (the sweep restarts the notice later)."""
    if retries + 1 >= topview_settings.max_attempts:
        return None
    delay = retry_delay(retries + 1)
    # Nothing was claimed, or the claim goes stale and the sweep restarts it; trying again
    # soon beats waiting SWEEP_AFTER.
    logger.warning(
        "Database error processing Topview notice id=%s [%s]: %s; retry in %.1fs",
        notice_id,
        runner,
        error,
        delay,
        extra={"topview_notice_id": notice_id, **fields},
    )
    return delay
