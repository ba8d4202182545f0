"""Public signals. Every signal is sent with ``sender=Notice`` (or ``SubmittedTask``).

Outcome signals are sent once per task outcome, after the database work that recorded
it has committed, by ``processing.process_notice`` (in the request, or in a Celery worker).
A receiver that raises marks the notice ``failed`` with its traceback; it is retried or
replayed later, so receivers should tolerate running again for the same notice.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Every task outcome, whatever its bizType (unknown ones included).
# kwargs: notice (Notice), task (SubmittedTask), result (dict | None: the parsed result),
#         succeeded (bool: notice.status == "success").
notice_received = Signal()

# One signal per bizType, sent right after notice_received, with the same kwargs.
scraper = Signal()
zero_shot_avatar = Signal()
m2v_preview = Signal()
m2v_export = Signal()
m2v_script = Signal()
product_avatar_replace_product_image = Signal()
product_avatar_image2video = Signal()
product_any_shoot = Signal()
common_task_image2video = Signal()
common_task_text2video = Signal()
common_task_text2image = Signal()
common_task_video2aiavatar = Signal()
voice_clone = Signal()
voice_text2voice = Signal()

#: bizType string -> its signal, e.g. ``by_biz_type["M2V_PREVIEW"] is m2v_preview``.
by_biz_type: dict[str, Signal] = {
    "SCRAPER": scraper,
    "ZERO_SHOT_AVATAR": zero_shot_avatar,
    "M2V_PREVIEW": m2v_preview,
    "M2V_EXPORT": m2v_export,
    "M2V_SCRIPT": m2v_script,
    "PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE": product_avatar_replace_product_image,
    "PRODUCT_AVATAR_IMAGE2VIDEO": product_avatar_image2video,
    "PRODUCT_ANY_SHOOT": product_any_shoot,
    "COMMON_TASK_IMAGE2VIDEO": common_task_image2video,
    "COMMON_TASK_TEXT2VIDEO": common_task_text2video,
    "COMMON_TASK_TEXT2IMAGE": common_task_text2image,
    "COMMON_TASK_VIDEO2AIAVATAR": common_task_video2aiavatar,
    "VOICE_CLONE": voice_clone,
    "VOICE_TEXT2VOICE": voice_text2voice,
}

# Lifecycle signals, for metrics and alerting rather than business logic.
# kwargs: notice (Notice), error (str: the traceback). Sent after a receiver raised.
notice_processing_failed = Signal()

# A task got no outcome within TASK_MAX_AGE and was marked expired by polling.reconcile
# (sender=SubmittedTask; send_robust). Not final: a late notice still delivers its outcome.
# kwargs: task (SubmittedTask, status "expired").
task_expired = Signal()

# A new notice was committed, by the endpoint or by a poll (not sent for repeated deliveries
# of a stored uuid), just before its processing starts. Sent with send_robust: a failing
# receiver is logged, never raised.
# kwargs: notice (Notice). The row is fetched only when a receiver is connected.
notice_stored = Signal()

# processing recorded a new status on a task (sent with sender=SubmittedTask, after commit of
# the change when not inside an outer transaction; send_robust).
# kwargs: task (SubmittedTask), old_status (str), new_status (str), notice (Notice | None:
#         the notice that brought the change).
task_status_changed = Signal()

# The endpoint refused a delivery (any non-2xx answer), after it was logged and counted
# (sender=Notice; send_robust). Nothing was stored.
# kwargs: reason (str, e.g. "wrong_uid", "invalid", "too_large"), status (int: the HTTP
#         status), remote_addr (str), account (str | None: when the UID was known),
#         uuid (str | None: when the endpoint had read the body, a 400; a refused
#         request's body is never read).
notice_rejected = Signal()

# A delivery repeated a uuid already stored: acknowledged again, nothing new stored
# (sender=Notice; send_robust). kwargs: uuid (str), account (str).
notice_redelivered = Signal()

# process_notice finished a notice without a receiver failing: it is "processed", or
# "duplicate" when its task already had an outcome (sender=Notice; send_robust).
# kwargs: notice (Notice, with state and processed_at set). In a batch drain the row's
# "processed" mark is committed with the drain's next statement, just after this signal.
notice_processed = Signal()

# polling.poll_task asked Topview about a task (sender=SubmittedTask; send_robust).
# kwargs: task (SubmittedTask), answer (str: "success", "fail", "running", or "error" when
#         the query failed; then the error is raised to the caller as before).
task_polled = Signal()

# Archiving (ARCHIVE_MEDIA), both sent with sender=ArchivedMedia and send_robust, after the
# row's new state is saved:
# media_archived: one output file is in the storage.
#   kwargs: media (ArchivedMedia: file, size, sha256, content_type, kind, index),
#           task (SubmittedTask).
media_archived = Signal()
# media_archive_failed: archiving one file stopped without a file; sent once per giving up
#   (not for each retry). An operator can retry it (admin "archive now", or
#   `topview_archive_media --retry-failed`).
#   kwargs: media (ArchivedMedia), task (SubmittedTask), error (str: why),
#           state (str: "failed" after MAX_ATTEMPTS, "expired" when the URL no longer works
#           even after a fresh query, "refused" when a rule forbids the URL or the file).
media_archive_failed = Signal()


def send_lifecycle(signal: Signal, sender: type, **kwargs: Any) -> None:
    """Send a lifecycle signal: a failing receiver is logged, never breaks the pipeline.

    Outcome signals (``notice_received`` and the bizType ones) are sent plainly instead, so
    that a receiver's error marks the notice failed and it is retried.
    """
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of a topview_callbacks lifecycle signal raised: %r",
                receiver,
                exc_info=response,
            )
