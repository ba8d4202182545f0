"""Celery tasks: thin wrappers over ``jobs``, ``polling`` and ``pruning``.

This is the only module of the package that imports Celery; nothing imports it unless
``PROCESSING`` is ``"celery"`` (``dispatch`` imports it then) or the host's Celery app
discovers it. Messages carry only a row's id, or nothing (a drain): the database is the
truth, so a lost, repeated or late message can never fire receivers twice (an attempt
holds its notices' row locks) and a lost one is picked up by the sweep.

Each task declares its own time limits, so that a host's global ``task_time_limit`` (60 s
soft and 300 s hard in cookiecutter-django's settings) cannot kill a slow receiver or a
big download halfway; a killed attempt would be rolled back and counted (docs/celery.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError, close_old_connections, transaction

from topview_callbacks import jobs, polling, pruning, sending
from topview_callbacks.conf import topview_settings
from topview_callbacks.retrying import retry_in

__all__ = [
    "archive_media",
    "enqueue_media",
    "enqueue_notice",
    "process_notices",
    "prune",
    "reconcile",
    "request_drain",
    "request_sending",
    "send_queued",
    "sweep",
]

# Publishing gives up quickly when the broker is down: the web request waits for it, and the
# notice is stored and acknowledged anyway (it stays pending; the sweep queues it later).
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# A notice job drains for jobs.JOB_SECONDS, plus what its last receivers take: a generous
# hard limit, never the host's. A download job's limits follow the settings it runs under
# (media_time_limit); this one covers a message published by other means.
NOTICE_TIME_LIMIT = 30 * 60
MEDIA_TIME_LIMIT = 2 * 60 * 60

# Acknowledged only when done, so a message whose worker died is delivered again; the
# rows count attempts, so a message that keeps killing its worker ends as a notice given
# up (processing/claims.py), not as a loop.
DURABLE: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,
    "ignore_result": True,
}


_drain_window = jobs.DrainWindow()


def _in_worker(task: Task[Any, Any]) -> bool:
    return not (task.request.is_eager or task.request.called_directly)


@shared_task(
    name="topview_callbacks.process_notices",
    time_limit=NOTICE_TIME_LIMIT,
    soft_time_limit=NOTICE_TIME_LIMIT - 60,
    **DURABLE,
)
def process_notices(self: Task[Any, Any], notice_id: int | None = None) -> int:
    """Drain the due notices (or attempt ``notice_id`` only); retried with backoff while the
    database is unreachable."""
    worker = _in_worker(self)
    if worker:
        # Connections live as in a web request: CONN_MAX_AGE applies, and one left broken
        # (the database restarted) is dropped rather than failing every later task.
        close_old_connections()
    try:
        return jobs.process_notices(_queue, notice_id)
    except (OperationalError, InterfaceError) as exc:
        # Nothing was attempted, or the attempt rolled back: try again soon.
        delay = retry_in(self.request.retries + 1)
        jobs.database_unreachable(exc, delay, f"celery task {self.request.id}")
        if delay is None:
            raise  # the sweep restarts the notices once the database is back
        raise self.retry(countdown=delay, exc=exc) from exc
    finally:
        if worker:
            close_old_connections()


@shared_task(
    name="topview_callbacks.archive_media",
    time_limit=MEDIA_TIME_LIMIT,
    soft_time_limit=MEDIA_TIME_LIMIT - 60,
    **DURABLE,
)
def archive_media(self: Task[Any, Any], media_id: int) -> str | None:
    """Download one output file into the storage; retried with backoff (``MAX_ATTEMPTS``,
    counted on the row)."""
    worker = _in_worker(self)
    if worker:
        close_old_connections()
    try:
        media, delay = jobs.archive_media(media_id)
    finally:
        if worker:
            close_old_connections()
    if delay is not None:
        enqueue_media(media_id, delay=delay)
    return None if media is None else str(media.state)


@shared_task(name="topview_callbacks.sweep", ignore_result=True)
def sweep() -> int:
    """Periodic: queue notices nothing works on any more (pending past ``SWEEP_AFTER``, a
    retry whose message was lost), and (``ARCHIVE_MEDIA``) the downloads that are due."""
    return jobs.sweep(_queue)


@shared_task(name="topview_callbacks.reconcile", ignore_result=True)
def reconcile() -> dict[str, Any]:
    """Periodic: poll Topview for tasks whose notice is overdue (``polling.reconcile``);
    the outcomes found are processed by ``process_notices`` jobs."""
    report = polling.reconcile(start=enqueue_notice)
    return dataclasses.asdict(report)  # plain data, in case results are stored as JSON


@shared_task(name="topview_callbacks.prune", ignore_result=True)
def prune() -> dict[str, int]:
    """Periodic: delete old notices and tasks (``PRUNE_AFTER_DAYS``, ``PRUNE_FAILED_...``)."""
    return dataclasses.asdict(pruning.prune())


@shared_task(
    name="topview_callbacks.send_queued",
    time_limit=NOTICE_TIME_LIMIT,
    soft_time_limit=NOTICE_TIME_LIMIT - 60,
    **DURABLE,
)
def send_queued(self: Task[Any, Any], account: str | None = None) -> dict[str, Any]:
    """Send the account's due queued submissions while slots are free (``sending``); a
    backed-off one is sent by a job due when its backoff ends. Periodic (no account): every
    account's, the safety net for a lost message."""
    worker = _in_worker(self)
    if worker:
        close_old_connections()
    try:
        report = sending.send_queued(account)
    finally:
        if worker:
            close_old_connections()
    if report.retry_in is not None:
        request_sending(account, delay=report.retry_in)
    return dataclasses.asdict(report)


def media_time_limit() -> float:
    """The hard time limit of one download job: the longest a download may take
    (``ARCHIVE_DEADLINE``), the query that confirms its URLs first (up to four tries of
    ``REQUEST_TIMEOUT`` with the client's retries and their backoff: five), and a minute."""
    return topview_settings.archive_deadline + 5 * topview_settings.request_timeout + 60


def _publish(
    task: Any, args: tuple[Any, ...], delay: float | None, what: str, **options: Any
) -> None:
    try:
        task.apply_async(
            args, countdown=delay, retry=True, retry_policy=PUBLISH_RETRY_POLICY, **options
        )
    except Exception:
        jobs.logger.exception(
            "Could not queue %s (is the broker down?); the sweep queues it later", what
        )


def enqueue_notice(notice_id: int, *, delay: float | None = None) -> None:
    """Queue an attempt at one notice once the current transaction commits, ``delay``
    seconds from now. Never raises: if the broker is unreachable, the sweep finds it."""
    transaction.on_commit(
        lambda: _publish(process_notices, (notice_id,), delay, f"Topview notice id={notice_id}")
    )


def request_drain() -> None:
    """Ask a worker to drain the due notices, after this process stored one (at most one
    message per ``jobs.DRAIN_WINDOW``). Never raises."""
    transaction.on_commit(
        lambda: _drain_window.request(
            lambda delay: _publish(process_notices, (), delay, "a drain of Topview notices")
        )
    )


def enqueue_media(media_id: int, *, delay: float | None = None) -> None:
    """Queue the download of one file once the current transaction commits. Never raises."""
    limit = media_time_limit()
    transaction.on_commit(
        lambda: _publish(
            archive_media,
            (media_id,),
            delay,
            f"archived media id={media_id}",
            time_limit=limit,
            soft_time_limit=limit - 30,
        )
    )


def request_sending(account: str | None = None, *, delay: float | None = None) -> None:
    """Queue a ``send_queued`` job once the current transaction commits, ``delay`` seconds
    from now. Never raises: cron's or beat's ``send_queued`` finds the rows later."""
    what = f"the sending of account {account!r}'s queued Topview submissions"

    def publish(countdown: float | None) -> None:
        _publish(send_queued, (account,), countdown, what)

    if delay is not None:
        transaction.on_commit(lambda: publish(delay))
    else:  # at most one job per jobs.DRAIN_WINDOW, and one at its end
        transaction.on_commit(lambda: jobs.sending_window(account).request(publish))


_queue = jobs.Queue(enqueue_notice, enqueue_media, request_drain)
