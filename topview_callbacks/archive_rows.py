"""The life of one ``ArchivedMedia`` row during archiving: due, claimed, released, retried,
waiting, given up.

Every change of a claimed row is conditional on its claim, so a worker whose claim went
stale (and was taken over) changes nothing. ``archiving`` and ``archive_sources`` move
rows only through these functions.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.files.storage import Storage
from django.db.models import Q, QuerySet
from django.utils import timezone

from topview_callbacks import lifecycle, signals
from topview_callbacks.archive_names import partial_name
from topview_callbacks.conf import topview_settings
from topview_callbacks.downloads import shown
from topview_callbacks.models import ArchivedMedia, MediaState, archive_storage
from topview_callbacks.retrying import retry_delay

logger = logging.getLogger("topview_callbacks.archiving")


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


def claim(media_id: int) -> ArchivedMedia | None:
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
        delete_quietly(archive_storage(), leftover)  # what a dead worker wrote
    media.claim, media.partial_name, media.attempts = token, partial, media.attempts + 1
    return media


def failed(media: ArchivedMedia, error: str) -> ArchivedMedia:
    """A failure worth retrying: pending again after a backoff, or failed at MAX_ATTEMPTS."""
    if media.attempts >= topview_settings.max_attempts:
        return give_up(media, MediaState.FAILED, f"{error} (attempt {media.attempts})")
    delay = retry_delay(media.attempts)
    media.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    release(media, MediaState.PENDING, error, next_attempt_at=media.next_attempt_at)
    logger.warning(
        "Archiving %s: %s; attempt %s, retry in %.1fs", media, error, media.attempts, delay
    )
    return media


def wait(media: ArchivedMedia, seconds: float, why: str) -> ArchivedMedia:
    """Put a claimed row back for a moment, the attempt not counted (another worker is
    doing what it needs first); the queue wrappers retry it after ``next_attempt_at``."""
    media.attempts -= 1
    media.next_attempt_at = timezone.now() + timedelta(seconds=seconds)
    release(
        media,
        MediaState.PENDING,
        why,
        next_attempt_at=media.next_attempt_at,
        attempts=media.attempts,
    )
    return media


def give_up(media: ArchivedMedia, state: str, error: str) -> ArchivedMedia:
    """Stop trying (``state``: failed, expired or refused) and say why, once."""
    if release(media, state, error):
        logger.error("Archiving %s (%s): %s", media, shown(media.source_url), error)
        lifecycle.send(
            signals.media_archive_failed,
            sender=ArchivedMedia,
            media=media,
            task=media.task,
            error=error,
            state=state,
        )
    return media


def release(media: ArchivedMedia, state: str, error: str, **extra: Any) -> bool:
    """Leave the row in ``state``, unclaimed; False when the claim was no longer ours (or,
    for a row nobody claimed, when a worker took it meanwhile)."""
    delete_quietly(archive_storage(), media.partial_name)
    values = {
        "state": state,
        "last_error": error,
        "claim": "",
        "claimed_at": None,
        "partial_name": "",
        **extra,
    }
    changed = ArchivedMedia.objects.filter(
        pk=media.pk, claim=media.claim, state=MediaState.PENDING
    ).update(**values)
    for field, value in values.items():
        setattr(media, field, value)
    return bool(changed)


def delete_quietly(storage: Storage, name: str) -> None:
    if not name:
        return
    try:
        if storage.exists(name):
            storage.delete(name)
    except Exception:  # logged: a leftover partial file costs space, never correctness
        logger.exception("Could not delete the partial file %s", name)
