"""Archiving: each output file of a successful task, copied once into the project's storage.

``processing`` creates one pending ``ArchivedMedia`` row per output URL when it records a
successful outcome (``ARCHIVE_MEDIA``); these plain functions do the downloads, off the
request path: the Celery task ``topview_callbacks.archive_media``, the Celery sweep, the
command ``topview_archive_media`` (cron) and the admin's "archive now" all call them.

A row is claimed before its download (a conditional UPDATE: of two workers, one gets it),
written under a partial name and renamed to its final name only when complete, then
marked archived; a worker that dies mid-download leaves a stale claim the sweep takes over.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.files.storage import Storage
from django.db.models import Q, QuerySet
from django.utils import timezone

from topview_callbacks import biz_types, signals
from topview_callbacks.archive_names import partial_name, target_name
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.downloads import (
    DownloadError,
    DownloadGone,
    DownloadRefused,
    download_to_storage,
)
from topview_callbacks.exceptions import TopviewError
from topview_callbacks.models import (
    GIVEN_UP_MEDIA_STATES,
    ArchivedMedia,
    MediaState,
    SubmittedTask,
    archive_storage,
)
from topview_callbacks.retrying import retry_delay

logger = logging.getLogger(__name__)


def create_rows(task: SubmittedTask) -> int:
    """Pending rows for the task's output media not yet known (e.g. a task that finished
    before ARCHIVE_MEDIA was on); returns how many are new."""
    return ArchivedMedia.objects.add_for_task(task, None)


def due_media(now: datetime | None = None) -> QuerySet[ArchivedMedia]:
    """Pending rows whose next attempt is due and that no live worker holds (a claim is
    stale after SWEEP_AFTER without a heartbeat: its worker died)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=topview_settings.sweep_after)
    return ArchivedMedia.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale),
        state=MediaState.PENDING,
    ).order_by("created_at", "pk")


def _claim(media_id: int) -> ArchivedMedia | None:
    """Take a due row for this attempt, or None (another worker has it, or it is done)."""
    media = due_media().select_related("task").filter(pk=media_id).first()
    if media is None:
        return None
    leftover, token = media.partial_name, uuid.uuid4().hex
    partial = partial_name(media, token)
    # Conditional on the claim we saw: of two workers, the second updates nothing.
    if not ArchivedMedia.objects.filter(
        pk=media.pk, claim=media.claim, state=MediaState.PENDING
    ).update(
        claim=token, claimed_at=timezone.now(), partial_name=partial, attempts=media.attempts + 1
    ):
        return None
    if leftover:
        _delete_quietly(archive_storage(), leftover)  # what a dead worker wrote
    media.claim, media.partial_name, media.attempts = token, partial, media.attempts + 1
    return media


def archive_one(media_id: int, *, client: TopviewClient | None = None) -> ArchivedMedia | None:
    """Download one row's file into the storage, once; returns the row in its new state, or
    None when it was not due (done, given up, waiting for its retry, or being downloaded)."""
    media = _claim(media_id)
    if media is None:
        return None
    refreshed = False
    while True:
        try:
            return _store(media)
        except DownloadGone as exc:
            if refreshed:
                return _give_up(media, MediaState.EXPIRED, f"{exc}, also after a fresh query")
            refreshed = True
            try:
                fresh = _fresh_url(media, client)
            except TopviewError as query_error:
                return _failed(media, f"{exc}; the query for a fresh URL failed: {query_error}")
            if fresh is None:
                return _give_up(media, MediaState.EXPIRED, f"{exc}; no fresh URL for it")
        except DownloadError as exc:
            if exc.retryable:
                return _failed(media, str(exc))
            refused = isinstance(exc, DownloadRefused)
            return _give_up(media, MediaState.REFUSED if refused else MediaState.FAILED, str(exc))
        except Exception as exc:  # the storage, most likely: worth another try
            logger.exception("Archiving %s failed", media)
            return _failed(media, f"{exc.__class__.__name__}: {exc}")
        media.source_url = fresh
        ArchivedMedia.objects.filter(pk=media.pk, claim=media.claim).update(source_url=fresh)


def _store(media: ArchivedMedia) -> ArchivedMedia:
    storage = archive_storage()

    def heartbeat() -> None:
        ArchivedMedia.objects.filter(pk=media.pk, claim=media.claim).update(
            claimed_at=timezone.now()
        )

    stored = download_to_storage(
        media.source_url, storage, media.partial_name, kind=media.kind, heartbeat=heartbeat
    )
    final = _promote(storage, stored.name, target_name(media, stored.extension), media)
    values: dict[str, Any] = {
        "file": final,
        "size": stored.size,
        "sha256": stored.sha256,
        "content_type": stored.content_type,
        "state": MediaState.ARCHIVED,
        "archived_at": timezone.now(),
        "last_error": "",
        "claim": "",
        "claimed_at": None,
        "partial_name": "",
        "next_attempt_at": None,
    }
    if not ArchivedMedia.objects.filter(pk=media.pk, claim=media.claim).update(**values):
        # Our claim went stale (no heartbeat for SWEEP_AFTER) and another worker took the
        # row over: it stores the same file under the same name and reports it.
        logger.warning("Archiving %s: the row was taken over meanwhile", media)
        return media
    for field, value in values.items():
        setattr(media, field, value)
    logger.info("Archived %s as %s (%s bytes)", media.source_url.split("?")[0], final, media.size)
    signals.send_lifecycle(
        signals.media_archived, sender=ArchivedMedia, media=media, task=media.task
    )
    return media


def _promote(storage: Storage, partial: str, final: str, media: ArchivedMedia) -> str:
    """Give the complete file its final name (replacing an earlier copy of the same row,
    never a file another row records)."""
    if ArchivedMedia.objects.filter(file=final).exclude(pk=media.pk).exists():
        # Names cannot collide (archive_names); should one ever, the first file stays.
        raise DownloadRefused(f"{final} is the file of another archived row; it was kept")
    try:
        source, target = storage.path(partial), storage.path(final)
    except NotImplementedError:  # not on a local disk
        bucket, normalize = (
            getattr(storage, "bucket", None),
            getattr(storage, "_normalize_name", None),
        )
        if bucket is not None and callable(normalize):
            # django-storages' S3Storage: a copy inside S3, no second transfer through us.
            bucket.copy({"Bucket": bucket.name, "Key": normalize(partial)}, normalize(final))
        else:
            if storage.exists(final):
                storage.delete(final)
            with storage.open(partial, "rb") as handle:
                final = storage.save(final, handle)
        storage.delete(partial)
        return final
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(source, target)  # atomic: the final name never shows a partial file
    return final


def _fresh_url(media: ArchivedMedia, client: TopviewClient | None) -> str | None:
    """The same output's URL in a new query result (presigned URLs expire in a day)."""
    task = media.task
    result = (client or TopviewClient(task.account)).query(task.biz_type, task.task_id)
    for kind, index, url in biz_types.numbered_media(biz_types.media_urls(task.biz_type, result)):
        if (kind, index) == (media.kind, media.index) and url != media.source_url:
            return url
    return None


def _failed(media: ArchivedMedia, error: str) -> ArchivedMedia:
    """A failure worth retrying: pending again after a backoff, or failed at MAX_ATTEMPTS."""
    if media.attempts >= topview_settings.max_attempts:
        return _give_up(media, MediaState.FAILED, f"{error} (attempt {media.attempts})")
    delay = retry_delay(media.attempts)
    media.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    _release(media, MediaState.PENDING, error, next_attempt_at=media.next_attempt_at)
    logger.warning(
        "Archiving %s: %s; attempt %s, retry in %.1fs", media, error, media.attempts, delay
    )
    return media


def _give_up(media: ArchivedMedia, state: str, error: str) -> ArchivedMedia:
    _release(media, state, error)
    logger.error("Archiving %s (%s): %s", media, media.source_url.split("?")[0], error)
    signals.send_lifecycle(
        signals.media_archive_failed,
        sender=ArchivedMedia,
        media=media,
        task=media.task,
        error=error,
        state=state,
    )
    return media


def _release(media: ArchivedMedia, state: str, error: str, **extra: Any) -> None:
    _delete_quietly(archive_storage(), media.partial_name)
    values = {
        "state": state,
        "last_error": error,
        "claim": "",
        "claimed_at": None,
        "partial_name": "",
        **extra,
    }
    ArchivedMedia.objects.filter(pk=media.pk, claim=media.claim).update(**values)
    for field, value in values.items():
        setattr(media, field, value)


def _delete_quietly(storage: Storage, name: str) -> None:
    if not name:
        return
    try:
        if storage.exists(name):
            storage.delete(name)
    except Exception:  # logged: a leftover partial file costs space, never correctness
        logger.exception("Could not delete the partial file %s", name)


def archive_task(task_pk: int) -> list[ArchivedMedia]:
    """Archive every due file of one task, here and now; returns the rows it worked on."""
    ids = list(due_media().filter(task_id=task_pk).values_list("pk", flat=True))
    return [done for pk in ids if (done := archive_one(pk)) is not None]


def retry_given_up(queryset: QuerySet[ArchivedMedia]) -> int:
    """Make failed, expired and refused rows pending again with fresh attempts (an operator's
    explicit choice, e.g. after raising ARCHIVE_MAX_BYTES); returns how many."""
    return queryset.filter(state__in=GIVEN_UP_MEDIA_STATES).update(
        state=MediaState.PENDING, attempts=0, next_attempt_at=None
    )


def sweep(*, limit: int = 100, restart: Any = None, task_pks: list[int] | None = None) -> int:
    """Start the due downloads (new, retry time come, or left by a dead worker); returns
    how many. ``restart`` gets each row id (the Celery sweep queues it); by default the
    file is downloaded here."""
    due = due_media()
    if task_pks is not None:
        due = due.filter(task_id__in=task_pks)
    started = 0
    for pk in list(due.values_list("pk", flat=True)[:limit]):
        if restart is not None:
            restart(pk)
        else:
            archive_one(pk)
        started += 1
    return started
