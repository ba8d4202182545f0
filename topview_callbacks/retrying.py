"""The retry policy shared by the queue wrappers (Celery's ``tasks`` and ``tasks_framework``).

Attempts are counted on the notice (``Notice.attempts``), not in a message, so a lost or
repeated message never resets them; this module only says how long to wait. It imports no
queue, so either wrapper can use it without the other's framework installed.
"""

from __future__ import annotations

import random

from topview_callbacks.conf import topview_settings


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts: exponential, capped, jittered."""
    delay = min(
        topview_settings.retry_backoff * 2.0 ** max(attempts - 1, 0),
        topview_settings.retry_backoff_max,
    )
    if topview_settings.retry_jitter:
        # "Equal jitter": at least half the backoff, so retries never come back at once.
        return delay / 2 + random.uniform(0, delay / 2)
    return delay
