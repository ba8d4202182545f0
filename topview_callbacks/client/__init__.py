"""``TopviewClient``: Topview's OpenAPI for one account.

Paths come from ``biz_types`` (the one table of endpoints); the client adds the account's
``noticeUrl`` to submits and records each submitted task, so the polling fallback
(``polling.reconcile``) knows what to ask about. ``session`` holds the HTTP conventions,
``uploads`` the file upload, ``records`` the task rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import models

from topview_callbacks import biz_types
from topview_callbacks.biz_types import CREDIT_DETAIL_PATH, NOTICE_URL_CHECK_PATH, BizType
from topview_callbacks.client.queueing import Submission, bodies, queue, queued_row
from topview_callbacks.client.records import SECRET_PARAMS, record_submitted
from topview_callbacks.client.uploads import UploadedFile, Uploads
from topview_callbacks.exceptions import TopviewAPIError, TopviewError
from topview_callbacks.models import SubmittedTask

logger = logging.getLogger(__name__)

__all__ = [
    "NOTICE_URL_CHECK_PATH",
    "SECRET_PARAMS",
    "Submission",
    "TopviewClient",
    "UploadedFile",
]

_UNSET: Any = object()


class TopviewClient(Uploads):
    """Submits, queries and uploads for one account (``account``: a name in ACCOUNTS, or
    None for the default one); see ``TopviewSession`` for timeouts, retries and errors."""

    def check_notice_url(self, url: str | None = None) -> Any:
        """Ask Topview whether it accepts ``url`` (default: NOTICE_URL) as a noticeUrl.

        Returns Topview's ``result`` on acceptance; raises ``TopviewAPIError`` on refusal.
        """
        return self.request(
            "POST", NOTICE_URL_CHECK_PATH, json={"noticeUrl": url or self.account.notice_url}
        )

    # Tasks ---------------------------------------------------------------------------

    def submit(
        self,
        biz_type: str,
        *,
        notice_url: str | None = _UNSET,
        owner: models.Model | None = None,
        reference: str = "",
        **params: Any,
    ) -> SubmittedTask:
        """Submit a task of ``biz_type`` with ``params`` (Topview's field names) now, and
        record it; ``enqueue`` is usually the better choice (see docs/submitting.md).

        ``noticeUrl`` is the account's NOTICE_URL unless ``notice_url`` is given; pass
        ``notice_url=None`` to submit without a callback (polling then finds the outcome).
        ``owner`` (a saved model instance) and ``reference`` (free text) say what the task is
        for. Returns the recorded ``SubmittedTask``. Never retried: on a connection error the
        task may or may not exist at Topview, so this raises ``TopviewConnectionError``.
        """
        spec = self._submittable(biz_type)
        body = {**dict(spec.submit_defaults), **params}
        body = self._with_notice_url(body, notice_url)
        result = self.request("POST", spec.submit_path, json=body)
        task_id = result.get("taskId") if isinstance(result, dict) else None
        if not task_id:
            raise TopviewAPIError(
                f"{spec.submit_path} answered success without a taskId: {result!r}",
                code="200",
                http_status=200,
            )
        return record_submitted(
            self.account.name,
            biz_type,
            str(task_id),
            result,
            body,
            owner=owner,
            reference=reference,
        )

    def enqueue(
        self,
        biz_type: str,
        *,
        owner: models.Model | None = None,
        reference: str = "",
        **params: Any,
    ) -> SubmittedTask:
        """Queue a task of ``biz_type`` with ``params`` in the current transaction; it is
        sent after commit (never if the transaction rolls back), at most MAX_UNFINISHED of
        the account's tasks at once, by the sender ``PROCESSING`` picks.

        Returns the ``SubmittedTask``, status ``queued``; its ``task_id`` is a placeholder
        until Topview answers. ``owner`` and ``reference`` as for ``submit``.
        """
        return self.enqueue_many(biz_type, [Submission(params, owner, reference)])[0]

    def enqueue_many(self, biz_type: str, submissions: Iterable[Submission]) -> list[SubmittedTask]:
        """``enqueue`` for many submissions of one bizType, in a few statements (one
        INSERT per ``queueing.BATCH_SIZE`` rows)."""
        spec = self._submittable(biz_type)
        rows = [
            queued_row(self.account.name, biz_type, body, item.owner, item.reference)
            for body, item in bodies(spec.submit_defaults, submissions)
        ]
        return queue(rows)

    def _submittable(self, biz_type: str) -> biz_types.BizTypeSpec:
        spec = biz_types.spec_for(biz_type)
        if spec is None:
            raise TopviewError(
                f"Unknown bizType {biz_type!r}: the client knows no submit endpoint for it. "
                f"Known: {', '.join(biz_types.SPECS)}."
            )
        if not spec.submittable:
            raise TopviewError(
                f"{biz_type} cannot be submitted: Topview documents no endpoint for it "
                "(it names a stage of an avatar marketing video task). Submit 'M2V_PREVIEW' "
                "instead; notices Topview sends as M2V_SCRIPT are still received and sent "
                "on the m2v_script signal."
            )
        if spec.uncertain:
            logger.info("Submitting %s to %s (an inferred endpoint)", biz_type, spec.submit_path)
        return spec

    def export_m2v(
        self, task_id: str, script_id: int = 0, *, notice_url: str | None = _UNSET
    ) -> SubmittedTask:
        """Export script ``script_id`` of a finished M2V task; records an M2V_EXPORT task.

        The export has its own ``noticeUrl`` (Topview does not reuse the submit's). One
        export per M2V task is tracked: a second export of the same task shares its row.
        """
        spec = biz_types.SPECS[BizType.M2V_EXPORT]
        body = self._with_notice_url({"taskId": task_id, "scriptId": script_id}, notice_url)
        result = self.request("POST", spec.submit_path, json=body)
        # Whether the export answers with a new taskId is not documented; the callback and
        # the query use the M2V task id, so that is the id we keep unless told otherwise.
        answered = result.get("taskId") if isinstance(result, dict) else None
        return record_submitted(
            self.account.name, BizType.M2V_EXPORT, str(answered or task_id), result, body
        )

    def query(self, biz_type: str, task_id: str, *, cloudfront: bool = False) -> Any:
        """The query-task ``result`` of ``task_id`` (a GET, so transient failures are retried)."""
        spec = biz_types.spec_for(biz_type)
        if spec is None:
            raise TopviewError(f"Unknown bizType {biz_type!r}: no query endpoint is known.")
        params = {"taskId": task_id, "needCloudFrontUrl": "true" if cloudfront else "false"}
        return self.request("GET", spec.query_path, params=params)

    def credit(self) -> Any:
        """The account's credit (``remainCredit``, ``expiredTime``, ...)."""
        return self.request("GET", CREDIT_DETAIL_PATH)

    def _with_notice_url(self, body: dict[str, Any], notice_url: str | None) -> dict[str, Any]:
        url = self.account.notice_url if notice_url is _UNSET else notice_url
        if url:
            return {**body, "noticeUrl": url}
        return {key: value for key, value in body.items() if key != "noticeUrl"}
