"""Archiving only what Topview itself returned (``ARCHIVE_CONFIRM_URLS``): one query per task.

A notice is unsigned, so the URLs in its result are whatever its sender wrote: a page of
their own behind a CloudFront distribution, a server that trickles, thousands of links, a
task that does not exist. Before the first download of a task, Topview is asked about the
task (``client.query``, as polling does) and only the outputs its answer names are fetched,
from the URLs of that answer (fresh presigned ones). An output the answer does not name is
refused; a task Topview does not know, or reports as failed, has every file refused. Rows
made from a polled result or under VERIFY_WITH_QUERY came from such an answer already and
are not asked about again (``ArchivedMedia.confirmed_at`` is set when they are created).

One query per task, however many workers start its files at once: the worker that takes
the task's lease (a conditional UPDATE of ``confirming_at`` on the task's first row) asks,
writes the answer's URLs on every pending row of the task and settles the rows no worker
holds; the others wait ``CONFIRM_WAIT`` seconds and find the answer on their row. An
expired URL (403/404/410) is asked about the same way, once per task, and every pending
row of the task gets its fresh URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from topview_callbacks import archive_rows, biz_types
from topview_callbacks.client import TopviewClient
from topview_callbacks.conf import topview_settings
from topview_callbacks.exceptions import TopviewConfigurationError, TopviewError
from topview_callbacks.models import ArchivedMedia, MediaState, SubmittedTask

#: Seconds a worker waits while another asks Topview about the same task.
CONFIRM_WAIT = 2.0
#: A lease older than this many REQUEST_TIMEOUTs belongs to a worker that died asking
#: (the client tries a query up to four times).
LEASE_TIMEOUTS = 5
WAITING = "waiting for another worker's query about this task"

Output = tuple[str, int]  # (kind, index)


@dataclass(frozen=True)
class Answer:
    """What Topview said about a task's outputs: ``urls`` by (kind, index), or why not."""

    urls: dict[Output, str] = field(default_factory=dict)
    error: str = ""
    retryable: bool = False


def ask(task: SubmittedTask, client: TopviewClient | None = None) -> Answer:
    """One query about ``task``: its output URLs, or why there are none to fetch."""
    try:
        result = (client or TopviewClient(task.account)).query(task.biz_type, task.task_id)
    except TopviewConfigurationError as exc:
        return Answer(error=f"cannot ask Topview which URLs to archive: {exc}")
    except TopviewError as exc:
        retryable = bool(getattr(exc, "retryable", False))
        return Answer(error=f"Topview's query for the task failed: {exc}", retryable=retryable)
    state = biz_types.task_status(task.biz_type, result)
    if state == "fail":
        return Answer(error="Topview reports the task as failed: it has no files to archive")
    if state != "success":
        return Answer(error=f"Topview reports the task as {state!r}", retryable=True)
    outputs = biz_types.numbered_media(biz_types.media_urls(task.biz_type, result))
    return Answer(urls={(kind, index): url for kind, index, url in outputs})


def confirm(media: ArchivedMedia, client: TopviewClient | None) -> ArchivedMedia | None:
    """Before the claimed ``media``'s first download: None when it may be fetched (its
    ``source_url`` is now the URL Topview returned), else the row in its new state
    (waiting for another worker's answer, retried later, or refused)."""
    answer = _ask_once(media, client)
    if answer is None:
        return archive_rows.wait(media, CONFIRM_WAIT, WAITING)
    return _settle(media, answer, MediaState.REFUSED)


def refresh(media: ArchivedMedia, client: TopviewClient | None, tried: str) -> ArchivedMedia | None:
    """After ``tried`` answered 403/404/410 (an expired presigned URL): None when the row
    has a fresh URL to fetch, else the row in its new state. Another worker of the task may
    have asked already; then its answer is used."""
    current = ArchivedMedia.objects.filter(pk=media.pk).values_list("source_url", flat=True)
    if (fresh := current.first()) and fresh != tried:
        media.source_url = fresh
        return None
    answer = _ask_once(media, client)
    if answer is None:
        return archive_rows.wait(media, CONFIRM_WAIT, WAITING)
    return _settle(media, answer, MediaState.EXPIRED, tried=tried)


def _ask_once(media: ArchivedMedia, client: TopviewClient | None) -> Answer | None:
    """Ask Topview about ``media``'s task and write the URLs of its answer on every pending
    row of the task; None when another worker holds the task's lease (it is asking)."""
    first = ArchivedMedia.objects.filter(task_id=media.task_id).order_by("pk")
    anchor = list(first.values_list("pk", flat=True)[:1])
    now = timezone.now()
    stale = now - timedelta(seconds=LEASE_TIMEOUTS * topview_settings.request_timeout)
    leased = ArchivedMedia.objects.filter(
        Q(confirming_at__isnull=True) | Q(confirming_at__lt=stale), pk__in=anchor
    )
    if not leased.update(confirming_at=now):
        return None
    try:
        answer = ask(media.task, client)
        pending = ArchivedMedia.objects.filter(task_id=media.task_id, state=MediaState.PENDING)
        confirmed = timezone.now()
        for pk, kind, index in pending.values_list("pk", "kind", "index"):
            if (url := answer.urls.get((kind, index))) is not None:
                ArchivedMedia.objects.filter(pk=pk).update(source_url=url, confirmed_at=confirmed)
        return answer
    finally:
        ArchivedMedia.objects.filter(pk__in=anchor).update(confirming_at=None)


def _settle(
    media: ArchivedMedia, answer: Answer, given_up: str, *, tried: str | None = None
) -> ArchivedMedia | None:
    """The claimed row's fate under ``answer`` (None: fetch its new ``source_url``), and the
    same for the task's other pending rows no worker holds, so that none of them asks
    again. ``given_up``: the state of a file the answer does not vouch for (refused, or
    expired when it was vouched for before); ``tried``: the URL that expired."""
    others = ArchivedMedia.objects.filter(
        task_id=media.task_id, state=MediaState.PENDING, claim=""
    ).exclude(pk=media.pk)
    if answer.retryable:
        media = archive_rows.failed(media, answer.error)
        if media.state == MediaState.PENDING:  # every file waits for the same next query
            others.update(next_attempt_at=media.next_attempt_at)
        else:
            for other in others.select_related("task"):
                archive_rows.give_up(other, media.state, media.last_error)
        return media
    unnamed = answer.error or "Topview's answer about the task does not name this output"
    for other in others.select_related("task"):
        if (other.kind, other.index) not in answer.urls:
            archive_rows.give_up(other, given_up, unnamed)
    url = answer.urls.get((media.kind, media.index))
    if url is None:
        return archive_rows.give_up(media, given_up, unnamed)
    if url == tried:
        return archive_rows.give_up(
            media, given_up, "the URL has expired and Topview's answer names the same one"
        )
    media.source_url, media.confirmed_at = url, timezone.now()
    return None
