"""The retry policy: how long to wait after a failed attempt, and when to stop.

Attempts are counted on the rows (``Notice.attempts``, ``ArchivedMedia.attempts``), never
in a queue's message, so a lost or repeated message never resets them. Notices retried
after a receiver raised and media downloads retried after an error wait the same way.
"""

from __future__ import annotations

import random

from topview_callbacks.conf import topview_settings


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts: exponential, capped, with "equal
    jitter" (at least half the backoff), so failures never come back all at once."""
    delay = min(
        topview_settings.retry_backoff * 2.0 ** max(attempts - 1, 0),
        topview_settings.retry_backoff_max,
    )
    return delay / 2 + random.uniform(0, delay / 2)


def retry_in(attempts: int) -> float | None:
    """Seconds before the next attempt after ``attempts`` attempts, the last one failed;
    None once MAX_ATTEMPTS are spent (then the row stays failed until an operator acts)."""
    if attempts >= topview_settings.max_attempts:
        return None
    return retry_delay(attempts)
