"""Storing notices and recording their outcomes on their tasks, in the caller's transaction.

``receive`` (inline processing) stores a new notice together with its outcome; ``store``
only stores it (pending, for a queue or a later run); ``record`` records the outcome of a
stored notice that an attempt holds; ``finish`` ends that attempt. The statements are in
``sql``; on PostgreSQL ``receive`` runs them inside one function (``functions``).

What recording decides, on every path: ``processed`` (the outcome is on the task now, or
was put there by an earlier attempt at this notice), ``duplicate`` (the task already had
its outcome, from another notice) or ``ignored`` (the task is another account's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from topview_callbacks import biz_types
from topview_callbacks.conf import DEFAULT_ACCOUNT, topview_settings
from topview_callbacks.models import (
    ArchivedMedia,
    Notice,
    NoticeSource,
    NoticeState,
    SubmittedTask,
    TaskStatus,
)
from topview_callbacks.processing import functions
from topview_callbacks.processing.sql import (
    CLASSIFY,
    FINISH,
    RECORD_OUTCOME,
    execute_each,
    fetch_each,
    fetchone,
    find_notice,
    instance,
    is_postgresql,
    json_text,
    moment,
    statement,
    store_notice,
    written,
)


@dataclass(frozen=True)
class Outcome:
    """What recording a notice's outcome did.

    ``task``: the notice's task (None when it is another account's). ``previous_status``:
    the task's status before this outcome, when this recording changed it. ``reason``:
    why an ignored notice is ignored.
    """

    state: str
    task: SubmittedTask | None = None
    previous_status: str | None = None
    reason: str = ""

    @property
    def fires(self) -> bool:
        """Whether the receivers run: the notice carries its task's outcome."""
        return self.state == NoticeState.PROCESSED


@dataclass(frozen=True)
class Repeated:
    """A delivery of a uuid stored already: its notice, and whether that is still pending."""

    notice_id: int
    pending: bool


@dataclass(frozen=True)
class Attempt:
    """How an attempt ends when its outcome fires: its state, why it failed, when it is
    retried (None: never)."""

    state: str = NoticeState.PROCESSED
    last_error: str = ""
    next_attempt_at: datetime | None = None

    def after(self, outcome: Outcome) -> Attempt:
        """How the attempt really ends: as planned when the receivers ran, else in the
        state recording found (duplicate, ignored)."""
        return self if outcome.fires else Attempt(outcome.state, outcome.reason)


def store(conn: BaseDatabaseWrapper, values: dict[str, Any]) -> int | None:
    """Store a new notice, pending; its id, or None when its uuid is stored already."""
    params = _params(conn, values, Attempt(NoticeState.PENDING), attempts=0)
    row = fetchone(conn, statement(store_notice(conn), conn.alias), {**params, "task_pk": None})
    return None if row is None else int(row[0])


def receive(
    conn: BaseDatabaseWrapper, values: dict[str, Any], attempt: Attempt
) -> tuple[Notice, Outcome] | Repeated:
    """Store a new notice with its outcome recorded, as one attempt that ends as
    ``attempt`` says when the outcome fires. For a uuid stored already nothing is written,
    not even to its task: ``Repeated``."""
    params = _params(conn, values, attempt, attempts=1)
    params["ignored_reason"] = ignored_reason(params["account"], values)
    if is_postgresql(conn):
        notice_id, repeated, state, task_pk, task, reason = functions.receive(
            conn, params, values.get("result")
        )
        if repeated:
            return Repeated(notice_id, state == NoticeState.PENDING)
        outcome = _outcome(conn, state, task_pk, task, reason)
    else:
        found = fetchone(conn, statement(find_notice(conn), conn.alias), params)
        if found is not None:
            return Repeated(int(found[0]), found[1] == NoticeState.PENDING)
        outcome = _record(conn, params, values.get("result"))
        row = fetchone(
            conn,
            statement(store_notice(conn), conn.alias),
            {**params, **_ending(conn, attempt.after(outcome)), "task_pk": _task_pk(outcome)},
        )
        # SQLite runs one writing transaction at a time: the uuid was still free.
        notice_id = int(row[0])
    ending = attempt.after(outcome)
    task = outcome.task if outcome.state != NoticeState.IGNORED else None
    notice = written(
        conn,
        Notice,
        {
            **values,
            "id": notice_id,
            "state": ending.state,
            "attempts": 1,
            "last_error": ending.last_error,
            "next_attempt_at": ending.next_attempt_at,
            "processed_at": None if ending.state == NoticeState.FAILED else timezone.now(),
            "submitted_task_id": None if task is None else task.pk,
        },
    )
    if task is not None:
        notice.submitted_task = task
    _after_recording(notice, outcome)
    return notice, outcome


def record(conn: BaseDatabaseWrapper, notice: Notice) -> Outcome:
    """Record the outcome of a stored notice that this attempt holds (``record_all``)."""
    return record_all(conn, [notice])[0]


def record_all(conn: BaseDatabaseWrapper, notices: list[Notice]) -> list[Outcome]:
    """Record the outcomes of a batch of stored notices that this attempt holds, in order,
    their statements sent together (``sql.fetch_each``).

    A notice linked to its task already recorded its outcome on an earlier attempt (which
    then failed, or which an operator replays): only its receivers run again.
    """
    new = [notice for notice in notices if notice.submitted_task_id is None]
    params = [_record_params(conn, notice) for notice in new]
    rows = fetch_each(conn, statement(RECORD_OUTCOME, conn.alias), params)
    recorded = {
        notice.pk: _recorded(conn, values, row, notice.result)
        for notice, values, row in zip(new, params, rows, strict=True)
    }
    outcomes = []
    for notice in notices:
        task_pk = notice.submitted_task_id
        if task_pk is None:
            outcome = recorded[notice.pk]
            _after_recording(notice, outcome)
        else:  # recorded by an earlier attempt
            task = SubmittedTask.objects.using(conn.alias).get(pk=task_pk)
            outcome = Outcome(NoticeState.PROCESSED, task)
        outcomes.append(outcome)
    return outcomes


def _record_params(conn: BaseDatabaseWrapper, notice: Notice) -> dict[str, Any]:
    values = {
        "uuid": notice.uuid,
        "account": notice.account,
        "biz_type": notice.biz_type,
        "task_id": notice.task_id,
        "status": notice.status,
        "error_message": notice.error_message,
        "result": notice.result,
        "source": notice.source,
        "received_at": notice.received_at,
    }
    params = _params(conn, values, Attempt(), attempts=notice.attempts)
    params["ignored_reason"] = ignored_reason(notice.account, values)
    return params


def finish(
    conn: BaseDatabaseWrapper, notice: Notice, outcome: Outcome, attempt: Attempt = Attempt()
) -> None:
    """End this attempt at ``notice``, as ``attempt`` says when its outcome fired, else in
    the state recording found; the notice is linked to its task."""
    finish_all(conn, [(notice, outcome, attempt)])


def finish_all(conn: BaseDatabaseWrapper, attempts: list[tuple[Notice, Outcome, Attempt]]) -> None:
    """``finish`` for each of a batch's notices, their statements sent together."""
    execute_each(conn, statement(FINISH, conn.alias), [_ended(conn, *one) for one in attempts])


def _ended(
    conn: BaseDatabaseWrapper, notice: Notice, outcome: Outcome, attempt: Attempt
) -> dict[str, Any]:
    """FINISH's parameters for one notice; the instance is updated to match."""
    ending = attempt.after(outcome)
    task_pk = _task_pk(outcome)
    notice.state, notice.last_error = ending.state, ending.last_error
    notice.next_attempt_at = ending.next_attempt_at
    notice.processed_at = None if ending.state == NoticeState.FAILED else timezone.now()
    notice.claim = ""
    notice.submitted_task = outcome.task if task_pk is not None else None
    return {"id": notice.pk, "task_pk": task_pk, **_ending(conn, ending)}


def foreign_owner(conn: BaseDatabaseWrapper, notice: Notice) -> str | None:
    """The account of the notice's task when that is another account's, else None."""
    row = fetchone(
        conn,
        statement(CLASSIFY, conn.alias),
        {"biz_type": notice.biz_type, "task_id": notice.task_id},
    )
    return str(row[1]) if row is not None and row[1] != notice.account else None


OWNER = "{owner}"


def ignored_reason(account: str, values: Any) -> str:
    """Why a notice for another account's task is ignored (``values``: a notice or its
    fields), with ``OWNER`` where the task's account goes."""
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name)
    return (
        f"The task {get('biz_type')} {get('task_id')} belongs to account '{OWNER}', but "
        f"the notice came with the Topview-Uid of account {account!r}: nothing was "
        "recorded or fired."
    )


def _record(conn: BaseDatabaseWrapper, params: dict[str, Any], result: Any) -> Outcome:
    """Record the outcome (``params``; ``result``: the notice's, parsed) on its task."""
    row = fetchone(conn, statement(RECORD_OUTCOME, conn.alias), params)
    return _recorded(conn, params, row, result)


def _recorded(conn: BaseDatabaseWrapper, params: dict[str, Any], row: Any, result: Any) -> Outcome:
    """The outcome of RECORD_OUTCOME with ``params``, which answered ``row``."""
    if row is not None:
        task = instance(conn, SubmittedTask, row, {"result": result})
        return Outcome(NoticeState.PROCESSED, task, task.previous_status)
    task_pk, account = fetchone(conn, statement(CLASSIFY, conn.alias), params)
    state = NoticeState.DUPLICATE if account == params["account"] else NoticeState.IGNORED
    reason = params["ignored_reason"].replace(OWNER, account)
    return _outcome(conn, state, task_pk, None, reason)


def _outcome(
    conn: BaseDatabaseWrapper,
    state: str,
    task_pk: int | None,
    recorded: SubmittedTask | None,
    reason: str,
) -> Outcome:
    """The ``Outcome`` of a recording that answered ``state`` (and the task it recorded
    the outcome on, if it did)."""
    if recorded is not None:
        return Outcome(NoticeState.PROCESSED, recorded, recorded.previous_status)
    if state == NoticeState.IGNORED or task_pk is None:
        return Outcome(NoticeState.IGNORED, reason=reason)
    return Outcome(state, SubmittedTask.objects.using(conn.alias).get(pk=task_pk))


def _after_recording(notice: Notice, outcome: Outcome) -> None:
    # In the outcome's own transaction: every path that records a success (callback,
    # poll, sweep, replay) leaves the rows archiving works from. The downloads happen
    # later, elsewhere.
    task = outcome.task
    if (
        topview_settings.archive_media
        and outcome.previous_status is not None
        and task is not None
        and task.status == TaskStatus.SUCCESS
    ):
        ArchivedMedia.objects.add_for_task(task, notice)


def _task_pk(outcome: Outcome) -> int | None:
    return None if outcome.task is None else int(outcome.task.pk)


def _ending(conn: BaseDatabaseWrapper, ending: Attempt) -> dict[str, Any]:
    """The statements' state columns for an attempt that ends as ``ending``."""
    failed = ending.state == NoticeState.FAILED
    return {
        "state": ending.state,
        "last_error": ending.last_error,
        "next_attempt_at": moment(conn, ending.next_attempt_at),
        "processed_at": None if failed else moment(conn, timezone.now()),
    }


def _params(
    conn: BaseDatabaseWrapper, values: dict[str, Any], attempt: Attempt, *, attempts: int
) -> dict[str, Any]:
    """The statements' parameters for one notice's ``values`` (its model fields)."""
    now = timezone.now()
    source = values.get("source") or NoticeSource.CALLBACK
    return {
        "uuid": values["uuid"],
        "account": values.get("account") or DEFAULT_ACCOUNT,
        "biz_type": values["biz_type"],
        "task_id": values["task_id"],
        "status": values["status"],
        "error_message": values.get("error_message") or "",
        "result": json_text(values.get("result")),
        "raw_body": values.get("raw_body") or "",
        "headers": json_text(values.get("headers") or {}),
        "remote_addr": values.get("remote_addr"),
        "source": source,
        "received_at": moment(conn, values.get("received_at") or now),
        "attempts": attempts,
        # RECORD_OUTCOME: only a callback's uuid becomes its task's notice uuid.
        "callback_uuid": values["uuid"] if source == NoticeSource.CALLBACK else "",
        "cost_credit": biz_types.cost_credit(values.get("result")),
        "now": moment(conn, now),
        **_ending(conn, attempt),
    }
