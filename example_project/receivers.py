"""Demo receivers: log every outcome, and show one receiver per bizType."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from topview_callbacks import signals
from topview_callbacks.models import Notice

logger = logging.getLogger(__name__)


@receiver(signals.task_outcome)
def log_every_outcome(sender: type, notice: Notice, succeeded: bool, **kwargs: Any) -> None:
    media = ", ".join(url for _kind, url in notice.media()) or "no media"
    logger.info(
        "Topview %s task %s %s: %s",
        notice.biz_type,
        notice.task_id,
        "succeeded" if succeeded else f"failed ({notice.error_message})",
        media,
    )


def _log_biz_type(sender: type, notice: Notice, **kwargs: Any) -> None:
    logger.info("%s receiver got notice %s", notice.biz_type, notice.uuid)


for _signal in signals.by_biz_type.values():
    _signal.connect(_log_biz_type, dispatch_uid=f"example-{id(_signal)}")
