"""The public signals: a task's outcome, and what happens to the notices that carry it.

**Outcome signals** (``task_outcome``, then the one of the notice's bizType) are sent once
per task outcome, by callback or by poll, inside the transaction that records the outcome
on its task: what a receiver writes commits with the outcome, or not at all. A receiver
that raises rolls that transaction back; the notice is recorded ``failed`` with the
traceback and retried later (``MAX_ATTEMPTS``), or replayed by an operator. Side effects
outside the database (mail, an API call, a queued job) belong in
``transaction.on_commit()``: they run once the outcome committed, never for an attempt that
rolled back.

**Lifecycle signals** (all the others) report what happened, for metrics, alerting and
logs: they are sent after the change they report committed, with ``send_robust``, so a
receiver that raises is logged and changes nothing.

docs/signals.md documents each one with an example; a test keeps that page equal to this
module (every signal and every keyword argument).
"""

from __future__ import annotations

from django.dispatch import Signal

from topview_callbacks.biz_types import BizType

#: Every task outcome, whatever its bizType (unknown ones included). Sender: ``Notice``.
#: kwargs: ``notice`` (Notice), ``task`` (SubmittedTask), ``result`` (dict | None: the
#: parsed result), ``succeeded`` (bool: ``notice.status == "success"``).
task_outcome = Signal()

#: bizType string -> its outcome signal, sent right after ``task_outcome`` with the same
#: kwargs, e.g. ``by_biz_type["M2V_PREVIEW"] is m2v_preview``. One per bizType Topview
#: documents (``biz_types.BizType``); an unknown bizType has only ``task_outcome``.
by_biz_type: dict[str, Signal] = {biz_type.value: Signal() for biz_type in BizType}

# The same signals by name, for ``@receiver(signals.m2v_preview)``.
scraper = by_biz_type["SCRAPER"]
zero_shot_avatar = by_biz_type["ZERO_SHOT_AVATAR"]
m2v_preview = by_biz_type["M2V_PREVIEW"]
m2v_export = by_biz_type["M2V_EXPORT"]
m2v_script = by_biz_type["M2V_SCRIPT"]
product_avatar_replace_product_image = by_biz_type["PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE"]
product_avatar_image2video = by_biz_type["PRODUCT_AVATAR_IMAGE2VIDEO"]
product_any_shoot = by_biz_type["PRODUCT_ANY_SHOOT"]
common_task_image2video = by_biz_type["COMMON_TASK_IMAGE2VIDEO"]
common_task_text2video = by_biz_type["COMMON_TASK_TEXT2VIDEO"]
common_task_text2image = by_biz_type["COMMON_TASK_TEXT2IMAGE"]
common_task_video2aiavatar = by_biz_type["COMMON_TASK_VIDEO2AIAVATAR"]
voice_clone = by_biz_type["VOICE_CLONE"]
voice_text2voice = by_biz_type["VOICE_TEXT2VOICE"]

#: A new notice was stored, by the endpoint or by a poll (not for a repeated uuid).
#: Sender: ``Notice``. kwargs: ``notice`` (Notice).
notice_stored = Signal()

#: A delivery repeated a uuid already stored: acknowledged again, nothing written.
#: Sender: ``Notice``. kwargs: ``uuid`` (str), ``account`` (str).
notice_redelivered = Signal()

#: The endpoint refused a delivery (any non-2xx answer), after logging and counting it;
#: nothing was stored. Sender: ``Notice``. kwargs: ``reason`` (str, e.g. "wrong_uid",
#: "invalid", "too_large"), ``status`` (int: the HTTP status), ``remote_addr`` (str),
#: ``account`` (str | None: when the UID was known), ``uuid`` (str | None: when the
#: endpoint had read the body; a refused request's body is never read).
notice_rejected = Signal()

#: An attempt at a notice ended without a receiver failing: it is "processed", or
#: "duplicate" (its task already had its outcome, from another notice). Sender:
#: ``Notice``. kwargs: ``notice`` (Notice, its state and processed_at set).
notice_processed = Signal()

#: An attempt at a notice failed. Sender: ``Notice``. kwargs: ``notice`` (Notice: its
#: attempts, and next_attempt_at when a retry is due, None when given up), ``error`` (str:
#: why, the same text as ``notice.last_error``: a receiver's traceback, or a sentence when
#: Topview's query could not confirm it (VERIFY_WITH_QUERY) or its attempts kept dying).
notice_processing_failed = Signal()

#: An outcome was recorded on a task: its status changed. Sender: ``SubmittedTask``.
#: kwargs: ``task`` (SubmittedTask), ``old_status`` (str), ``new_status`` (str),
#: ``notice`` (Notice: the notice that brought the outcome).
task_status_changed = Signal()

#: Polling asked Topview about a task. Sender: ``SubmittedTask``. kwargs: ``task``
#: (SubmittedTask), ``answer`` (str: "success", "fail", "running", or "error" when the
#: query failed; the error is then raised to the caller).
task_polled = Signal()

#: A task got no outcome within TASK_MAX_AGE and was marked expired. Not final: a late
#: outcome still arrives. Sender: ``SubmittedTask``. kwargs: ``task`` (SubmittedTask).
task_expired = Signal()

#: One output file is in the storage (ARCHIVE_MEDIA). Sender: ``ArchivedMedia``. kwargs:
#: ``media`` (ArchivedMedia: file, size, sha256, content_type, kind, index), ``task``
#: (SubmittedTask).
media_archived = Signal()

#: Archiving one file stopped without a file, once per giving up (not for each retry).
#: Sender: ``ArchivedMedia``. kwargs: ``media`` (ArchivedMedia), ``task``
#: (SubmittedTask), ``error`` (str: why), ``state`` (str: "failed" after MAX_ATTEMPTS,
#: "expired" when the URL no longer works even after a fresh query, "refused" when a rule
#: forbids the URL or the file).
media_archive_failed = Signal()

#: Submissions were queued (``TopviewClient.enqueue``, ``enqueue_many``), sent once the
#: transaction that queued them committed (never for one rolled back). Sender:
#: ``SubmittedTask``. kwargs: ``account`` (str: the account's name), ``count`` (int).
submissions_queued = Signal()

#: A queued submission was sent and its answer lost (a timeout, a connection reset): the
#: task may exist at Topview. It is never resent by itself; an operator resends it or
#: gives it up in the admin, or its callback resolves it. Sender: ``SubmittedTask``.
#: kwargs: ``task`` (SubmittedTask, status "uncertain"), ``error`` (str).
submission_uncertain = Signal()

#: Topview refused a queued submission (any answer but a busy one: bad parameters, a
#: content filter...): the task is "fail", with Topview's code and message in
#: ``error_message``; no outcome signal follows. Sender: ``SubmittedTask``. kwargs:
#: ``task`` (SubmittedTask), ``error`` (str).
submission_refused = Signal()
