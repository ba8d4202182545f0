"""How the package sends its lifecycle signals (``signals``): robustly.

A receiver of a lifecycle signal that raises is logged and changes nothing: metrics and
alerting must never break the pipeline. Outcome signals are sent plainly instead, inside
the attempt's transaction, so that a receiver's error fails the attempt.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)


def send(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send ``signal``; log (never raise) what a receiver raises."""
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a topview_callbacks lifecycle signal raised: %r",
                receiver,
                exc_info=response,
            )
