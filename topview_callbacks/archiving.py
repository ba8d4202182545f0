"""Archiving: each output file of a successful task, copied once into the project's storage.

``processing`` creates one pending ``ArchivedMedia`` row per output URL when it records a
successful outcome (``ARCHIVE_MEDIA``); these plain functions do the downloads, off the
request path: the ``archive_media`` job (Celery or Django Tasks), the queues' sweep, the
command ``topview_archive_media`` (cron) and the admin's "archive now" all call them.

A row is claimed before its download (a conditional UPDATE: of two workers, one gets it;
``archive_rows``), its URL confirmed by Topview once per task (``archive_sources``), the
file written under a partial name and renamed to its final name (``archive_names``) only
when complete, then marked archived; a worker that dies mid-download leaves a stale claim
the sweep takes over.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.core.files.storage import Storage
from django.db.models import QuerySet
from django.utils import timezone

from topview_callbacks import archive_rows, archive_sources, lifecycle, signals
from topview_callbacks.archive_names import target_name
from topview_callbacks.archive_rows import due_media
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.downloads import (
    DownloadError,
    DownloadGone,
    DownloadRefused,
    download_to_storage,
    shown,
)
from topview_callbacks.models import (
    GIVEN_UP_MEDIA_STATES,
    ArchivedMedia,
    MediaState,
    SubmittedTask,
    archive_storage,
)

__all__ = ["archive_one", "archive_task", "create_rows", "due_media", "retry_given_up", "start_due"]

logger = logging.getLogger(__name__)


def create_rows(task: SubmittedTask) -> int:
    """Pending rows for the task's output media not yet known (e.g. a task that finished
    before ARCHIVE_MEDIA was on); returns how many are new."""
    return ArchivedMedia.objects.add_for_task(task, None)


def archive_one(media_id: int, *, client: TopviewClient | None = None) -> ArchivedMedia | None:
    """Download one row's file into the storage, once; returns the row in its new state, or
    None when it was not due (done, given up, waiting for its retry, or being downloaded)."""
    media = archive_rows.claim(media_id)
    if media is None:
        return None
    # A URL Topview returned in this very attempt that answers 403/404/410 is gone: asking
    # again would only name it again.
    asked = False
    if topview_settings.archive_confirm_urls and media.confirmed_at is None:
        stopped = archive_sources.confirm(media, client)
        if stopped is not None:
            return stopped
        asked = True
    while True:
        try:
            return _store(media)
        except DownloadGone as exc:
            if asked:
                error = f"{exc}, also from the URL of Topview's latest answer"
                return archive_rows.give_up(media, MediaState.EXPIRED, error)
            asked = True
            stopped = archive_sources.refresh(media, client, media.source_url)
            if stopped is not None:
                return stopped
        except DownloadError as exc:
            if exc.retryable:
                return archive_rows.failed(media, str(exc))
            refused = isinstance(exc, DownloadRefused)
            state = MediaState.REFUSED if refused else MediaState.FAILED
            return archive_rows.give_up(media, state, str(exc))
        except Exception as exc:  # the storage, most likely: worth another try
            logger.exception("Archiving %s failed", media)
            return archive_rows.failed(media, f"{exc.__class__.__name__}: {exc}")


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
    logger.info("Archived %s as %s (%s bytes)", shown(media.source_url), final, media.size)
    lifecycle.send(signals.media_archived, sender=ArchivedMedia, media=media, task=media.task)
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


def start_due(*, limit: int = 100, restart: Any = None, task_pks: list[int] | None = None) -> int:
    """Start the due downloads (new, retry time come, or left by a dead worker); returns
    how many. ``restart`` gets each row id (a queue's sweep queues it); by default the
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
