"""VERIFY_WITH_QUERY: a callback's claim replaced by Topview's answer to a query.

Callbacks are unsigned; with the setting on, an outcome is recorded and fired only once the
query endpoint confirms it. Called by ``processing`` with no row lock held.
"""

from __future__ import annotations

import logging

from topview_callbacks import biz_types, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import TopviewError
from topview_callbacks.models import FINAL_TASK_STATUSES, Notice, NoticeSource, NoticeState
from topview_callbacks.recording import mark_ignored

logger = logging.getLogger("topview_callbacks.processing")  # the pipeline's one logger


def needs_verification(notice: Notice) -> bool:
    # Every callback, whatever its bizType: one the table does not know (or spelled in
    # another case) cannot be verified, and must not be fired unverified either.
    return topview_settings.verify_with_query and notice.source == NoticeSource.CALLBACK


def verified(notice: Notice) -> bool:
    """VERIFY_WITH_QUERY: replace a callback's claim with Topview's answer to a query (only
    called for a notice that ``_needs_verification``).

    False when the notice cannot be confirmed. A bizType without a known query endpoint
    can never be: the notice is ignored. When the query fails or the task is not final
    there, the notice goes back to pending (the sweep or a redelivery retries it) and the
    task is left open, so a later delivery of the outcome, by callback or by poll, is not
    blocked; after MAX_ATTEMPTS attempts it is marked failed instead.
    """
    if biz_types.spec_for(notice.biz_type) is None:
        mark_ignored(
            notice,
            f"VERIFY_WITH_QUERY is on and bizType {notice.biz_type!r} has no known query "
            "endpoint, so the notice cannot be verified; nothing was recorded or fired.",
        )
        return False
    try:
        result = TopviewClient(notice.account).query(notice.biz_type, notice.task_id)
        state = biz_types.task_status(notice.biz_type, result)
        if state not in FINAL_TASK_STATUSES:
            raise TopviewError(f"the query endpoint reports the task as {state!r}")
    except Exception as exc:  # whatever went wrong, the notice must stay retryable
        _not_verified(notice, exc)
        return False
    notice.status = state
    if isinstance(result, dict):
        notice.result = result
        notice.error_message = str(result.get("errorMsg") or "")
    Notice.objects.filter(pk=notice.pk).update(
        status=notice.status, result=notice.result, error_message=notice.error_message
    )
    return True


def _not_verified(notice: Notice, exc: Exception) -> None:
    message = f"Not confirmed by Topview's query endpoint (VERIFY_WITH_QUERY): {exc}"
    max_attempts = topview_settings.max_attempts
    if notice.attempts < max_attempts:
        logger.warning("Topview notice %s: %s", notice.uuid, message, extra=notice.log_context())
        Notice.objects.filter(pk=notice.pk).update(state=NoticeState.PENDING, last_error=message)
        notice.state, notice.last_error = NoticeState.PENDING, message
        return
    # A spoofed notice is never confirmed: without a cap it would cost a query on every
    # sweep forever. Failed with attempts spent, the sweep leaves it; replay stays possible.
    message = f"Gave up after {notice.attempts} attempts (MAX_ATTEMPTS). {message}"
    logger.error("Topview notice %s: %s", notice.uuid, message, extra=notice.log_context())
    Notice.objects.filter(pk=notice.pk).update(state=NoticeState.FAILED, last_error=message)
    notice.state, notice.last_error = NoticeState.FAILED, message
    signals.send_lifecycle(
        signals.notice_processing_failed, sender=Notice, notice=notice, error=message
    )
