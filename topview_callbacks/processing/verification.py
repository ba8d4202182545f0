"""VERIFY_WITH_QUERY: a callback's claim replaced by Topview's answer to a query.

Callbacks are unsigned; with the setting on, an outcome is recorded and fired only once the
query endpoint confirms it. Runs between an attempt's start and its transaction, with no
row lock held and no transaction open across the call to Topview.
"""

from __future__ import annotations

import logging

from django.db.backends.base.base import BaseDatabaseWrapper

from topview_callbacks import biz_types, lifecycle, signals
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import TopviewError
from topview_callbacks.models import FINAL_TASK_STATUSES, Notice, NoticeSource, NoticeState
from topview_callbacks.processing import claims, recording
from topview_callbacks.processing.sql import VERIFIED, execute, json_text, statement
from topview_callbacks.retrying import retry_in

logger = logging.getLogger(__name__)


def needs_verification(notice: Notice) -> bool:
    # Every callback whose outcome is not recorded yet, whatever its bizType: one the table
    # does not know (or spelled in another case) cannot be verified, and must not be fired
    # unverified either.
    return (
        topview_settings.verify_with_query
        and notice.source == NoticeSource.CALLBACK
        and notice.submitted_task_id is None
    )


def verify(conn: BaseDatabaseWrapper, notices: list[Notice]) -> None:
    """Ask Topview about each notice that needs it. A confirmed one takes Topview's answer
    and stays in its attempt; one that cannot be confirmed is given back for a later
    attempt (failed after MAX_ATTEMPTS), and one that never can be (a task of another
    account, a bizType without a query endpoint) is ignored: nothing fires for either."""
    for notice in notices:
        if not needs_verification(notice):
            continue
        owner = recording.foreign_owner(conn, notice)
        if owner is not None:
            # Checked first, so a foreign notice costs no call to Topview.
            reason = recording.ignored_reason(notice.account, notice)
            _ignore(conn, notice, reason.replace(recording.OWNER, owner))
        elif biz_types.spec_for(notice.biz_type) is None:
            _ignore(
                conn,
                notice,
                f"VERIFY_WITH_QUERY is on and bizType {notice.biz_type!r} has no known query "
                "endpoint, so the notice cannot be verified; nothing was recorded or fired.",
            )
        else:
            _ask(conn, notice)


def _ask(conn: BaseDatabaseWrapper, notice: Notice) -> None:
    try:
        result = TopviewClient(notice.account).query(notice.biz_type, notice.task_id)
        state = biz_types.task_status(notice.biz_type, result)
        if state not in FINAL_TASK_STATUSES:
            raise TopviewError(f"the query endpoint reports the task as {state!r}")
    except Exception as exc:  # whatever went wrong, the notice must stay retryable
        _not_verified(conn, notice, exc)
        return
    notice.status = str(state)
    if isinstance(result, dict):
        notice.result = result
        notice.error_message = str(result.get("errorMsg") or "")
    execute(
        conn,
        statement(VERIFIED, conn.alias),
        {
            "id": notice.pk,
            "status": notice.status,
            "result": json_text(notice.result),
            "error_message": notice.error_message,
        },
    )


def _ignore(conn: BaseDatabaseWrapper, notice: Notice, reason: str) -> None:
    logger.warning("Topview notice %r ignored: %s", notice.uuid, reason, extra=notice.log_context())
    recording.finish(conn, notice, recording.Outcome(NoticeState.IGNORED, reason=reason))


def _not_verified(conn: BaseDatabaseWrapper, notice: Notice, exc: Exception) -> None:
    message = f"Not confirmed by Topview's query endpoint (VERIFY_WITH_QUERY): {exc}"
    delay = retry_in(notice.attempts)
    if delay is not None:
        logger.warning("Topview notice %r: %s", notice.uuid, message, extra=notice.log_context())
        claims.release(conn, notice, NoticeState.PENDING, message, delay)
        return
    # A spoofed notice is never confirmed: without a cap it would cost a query on every
    # attempt forever. Failed with attempts spent, nothing retries it; replay stays possible.
    message = f"Gave up after {notice.attempts} attempts (MAX_ATTEMPTS). {message}"
    logger.error("Topview notice %r: %s", notice.uuid, message, extra=notice.log_context())
    claims.release(conn, notice, NoticeState.FAILED, message, None)
    lifecycle.send(signals.notice_processing_failed, sender=Notice, notice=notice, error=message)
