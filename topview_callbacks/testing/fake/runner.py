"""The fake Topview's tasks: how they run, what a query says, when their callbacks go.

``FakeTaskRunner`` is the state machine inside ``FakeTopview`` (``testing.fake.api``): tasks
run on its clock from ``init`` to ``running`` to ``success`` or ``fail``, and each ended
task's callback POSTs are scheduled with the ``Chaos`` asked for (drop, duplicate, delay,
reorder). A transport takes the due ones (``pop_due``) and sends them.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from topview_callbacks.biz_types import BizType
from topview_callbacks.testing.delivery import deliver_notice, notice_path
from topview_callbacks.testing.payloads import notice_payload, success_result

FAIL_MESSAGE = "Generation failed (fake Topview)."


@dataclass(frozen=True)
class Chaos:
    """How the fake's tasks run and how their callbacks misbehave.

    ``duration``: (min, max) seconds a task runs, or None to run until ``finish()``.
    ``fail_rate``: share of tasks that fail. ``drop``/``duplicate``: share of callbacks
    never sent / sent twice. ``delay``: (min, max) seconds between a task's end and each
    callback POST. ``reorder``: callbacks due together leave in random order.
    ``seed``: seeds every random choice, for a reproducible run. ``clock``: the time source,
    in seconds (default ``time.monotonic``).
    """

    duration: tuple[float, float] | None = None
    fail_rate: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)
    reorder: bool = False
    seed: int | None = None
    clock: Callable[[], float] = time.monotonic


@dataclass
class FakeTask:
    """One task as the fake runs it. ``finish_at`` None: it runs until ``finish()``."""

    biz_type: str
    task_id: str
    notice_uuid: str | None
    notice_url: str | None
    uid: str
    params: dict[str, Any]
    submitted_at: float
    finish_at: float | None
    outcome: str  # "success" or "fail", decided at submit
    output: dict[str, Any]
    queried: bool = False
    settled: bool = False  # its callbacks have been scheduled

    def state(self, now: float) -> str:
        if self.finish_at is not None and now >= self.finish_at:
            return self.outcome
        if self.finish_at is None:
            return "running" if self.queried else "init"
        # The first fifth of the run is "init" (queued), as Topview reports it.
        return (
            "init"
            if now < self.submitted_at + (self.finish_at - self.submitted_at) / 5
            else "running"
        )


@dataclass(order=True)
class ScheduledCallback:
    """One callback POST the fake will send (or sent). Formerly ``Delivery``."""

    send_at: float
    order: float
    url: str = field(compare=False)
    uid: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    copy: int = field(compare=False, default=1)


# A callback as sent: (callback, HTTP status or None if it never got one, acknowledged).
SentCallback = tuple[ScheduledCallback, int | None, bool]


def deliver_in_process(callback: ScheduledCallback) -> Any:
    """Send ``callback`` to this project's endpoint with Django's test client (to the
    noticeUrl's path and query string)."""
    parts = urlsplit(callback.url)
    path = parts.path or None
    if parts.query:
        path = f"{path or notice_path(callback.uid)}?{parts.query}"
    return deliver_notice(callback.payload, uid=callback.uid, path=path)


class FakeTaskRunner:
    """Fake tasks and their scheduled callbacks; thread-safe (one lock guards the state).

    Run as ``chaos`` says, with any of its fields overridden by keyword
    (``FakeTaskRunner(duration=(1, 5), drop=0.3)``).
    """

    def __init__(self, chaos: Chaos | None = None, **options: Any) -> None:
        self.chaos = replace(chaos or Chaos(), **options)
        self.clock = self.chaos.clock
        self.rng = random.Random(self.chaos.seed)
        self.tasks: dict[tuple[str, str], FakeTask] = {}
        self.outbox: list[ScheduledCallback] = []
        self.sent: list[SentCallback] = []
        self.stats = {"callbacks": 0, "dropped": 0, "duplicated": 0, "sent": 0, "acked": 0}
        self._lock = threading.RLock()
        self._order = itertools.count()
        self._running: dict[str, set[tuple[str, str]]] = {}  # per uid: tasks not seen ended
        # Tasks whose callbacks are not scheduled yet: each tick looks at these alone, so a
        # run of many thousand tasks does not slow down as it goes.
        self._unsettled: dict[tuple[str, str], FakeTask] = {}
        # Rewrites a new task's output (the HTTP fake points its media URLs at itself).
        self.rewrite_output: Callable[[FakeTask], dict[str, Any]] | None = None

    # Test controls -------------------------------------------------------------------

    def finish(
        self, task_id: str, status: str = "success", *, biz_type: str | None = None
    ) -> FakeTask:
        """End a task now with ``status``; its callback becomes due (after ``delay``)."""
        with self._lock:
            task = self.task(task_id, biz_type)
            task.outcome = status
            task.finish_at = min(task.finish_at or self.clock(), self.clock())
            if status != "success":
                task.output = {}
            return task

    def task(self, task_id: str, biz_type: str | None = None) -> FakeTask:
        """The task ``task_id`` (of ``biz_type``, if given); KeyError if the fake has none."""
        found = self.find(task_id, None if biz_type is None else [biz_type])
        if found is None:
            raise KeyError(f"The fake knows no task {task_id!r}")
        return found

    def find(self, task_id: str, biz_types: Iterable[str] | None = None) -> FakeTask | None:
        """The task ``task_id`` of the first of ``biz_types`` that has one (None: any)."""
        with self._lock:
            if biz_types is None:
                return next((t for (_, i), t in self.tasks.items() if i == task_id), None)
            keys = [(biz_type, task_id) for biz_type in biz_types]
            return next((self.tasks[key] for key in keys if key in self.tasks), None)

    def idle(self) -> bool:
        """True when every timed task has ended and every callback has been sent."""
        with self._lock:
            self._settle(self.clock())
            timed = [t for t in self._unsettled.values() if t.finish_at is not None]
            return not timed and not self.outbox

    # Callbacks -----------------------------------------------------------------------

    def pop_due(self, now: float | None = None) -> list[ScheduledCallback]:
        """Callbacks whose time has come, in the order they are to be sent."""
        with self._lock:
            now = self.clock() if now is None else now
            self._settle(now)
            due = []
            while self.outbox and self.outbox[0].send_at <= now:
                due.append(heapq.heappop(self.outbox))
            return due

    def next_due_in(self) -> float | None:
        """Seconds until the next callback or task end, None if nothing is scheduled."""
        with self._lock:
            now = self.clock()
            times = [d.send_at for d in self.outbox[:1]]
            times += [t.finish_at for t in self._unsettled.values() if t.finish_at]
            return max(0.0, min(times) - now) if times else None

    def record_sent(self, callback: ScheduledCallback, status: int | None, acked: bool) -> None:
        with self._lock:
            self.sent.append((callback, status, acked))
            self.stats["sent"] += 1
            self.stats["acked"] += int(acked)

    def deliver_callbacks(
        self, send: Callable[[ScheduledCallback], Any] = deliver_in_process
    ) -> int:
        """Send every due callback with ``send`` (default: in-process ``deliver_notice``)."""
        due = self.pop_due()
        for callback in due:
            response = send(callback)
            status = getattr(response, "status_code", None)
            self.record_sent(callback, status, status == 200)
        return len(due)

    # Tasks ---------------------------------------------------------------------------

    def submit(
        self, biz_type: str, data: dict[str, Any], uid: str, *, task_id: str | None = None
    ) -> FakeTask:
        """Start a task of ``biz_type`` for the submit body ``data`` (a new id by default)."""
        with self._lock:
            now = self.clock()
            notice_url = data.get("noticeUrl") or None
            finish_at = None
            if self.chaos.duration is not None:
                finish_at = now + self.rng.uniform(*self.chaos.duration)
            outcome = "fail" if self.rng.random() < self.chaos.fail_rate else "success"
            task = FakeTask(
                biz_type=biz_type,
                task_id=task_id or uuid_module.uuid4().hex,
                notice_uuid=uuid_module.uuid4().hex if notice_url else None,
                notice_url=notice_url,
                uid=uid,
                params=data,
                submitted_at=now,
                finish_at=finish_at,
                outcome=outcome,
                output=success_result(biz_type) if outcome == "success" else {},
            )
            if self.rewrite_output is not None and task.output:
                task.output = self.rewrite_output(task)
            self.tasks[(biz_type, task.task_id)] = task
            self._unsettled[(biz_type, task.task_id)] = task
            self._running.setdefault(uid, set()).add((biz_type, task.task_id))
            return task

    def unfinished(self, uid: str) -> int:
        """How many of the account ``uid``'s tasks have not ended yet (a look at the ones
        not seen ended before: a long run stays fast)."""
        with self._lock:
            now = self.clock()
            running = self._running.get(uid, set())
            running -= {key for key in running if self.tasks[key].state(now) in ("success", "fail")}
            return len(running)

    def query(self, biz_types: Iterable[str], task_id: str) -> dict[str, Any] | None:
        """The query-task result for ``task_id`` of one of ``biz_types``; None if unknown."""
        with self._lock:
            tasks = [self.tasks[(b, task_id)] for b in biz_types if (b, task_id) in self.tasks]
            if not tasks:
                return None
            main = next((t for t in tasks if t.biz_type != BizType.M2V_EXPORT), tasks[0])
            view = self.view(main)
            main.queried = True  # a task run by hand reports "init" once, then "running"
            return view

    def view(self, task: FakeTask) -> dict[str, Any]:
        """The query-task result of ``task`` now (for M2V, with its export, if any)."""
        with self._lock:
            now = self.clock()
            if task.biz_type == BizType.M2V_EXPORT:
                task = self.tasks.get((BizType.M2V_PREVIEW, task.task_id)) or task
            state = task.state(now)
            status_key = (
                "taskStatus"
                if task.biz_type == BizType.PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE
                else "status"
            )
            result: dict[str, Any] = {"taskId": task.task_id, status_key: state, "errorMsg": None}
            if state == "success":
                result.update(task.output)
            elif state == "fail":
                result["errorMsg"] = FAIL_MESSAGE
            if task.biz_type in (BizType.M2V_PREVIEW, BizType.M2V_SCRIPT):
                export = self.tasks.get((BizType.M2V_EXPORT, task.task_id))
                item: dict[str, Any] = {"scriptId": 0}
                item.update(dict.fromkeys(("status", "videoUrl", "coverUrl")))
                if export is not None:
                    export_state = export.state(now)
                    done = export_state in ("success", "fail")
                    item["status"] = export_state if done else "running"
                    if export_state == "success":
                        item.update(export.output["exportVideos"][0])
                result["exportVideos"] = [item]
            return result

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        """The notice body, as the contract shows it: ``result`` is a JSON string."""
        state = task.state(self.clock())
        return notice_payload(
            task.biz_type,
            status=state,
            task_id=task.task_id,
            uuid=task.notice_uuid,
            error_msg="" if state == "success" else FAIL_MESSAGE,
            result=self.view(task),
        )

    def _settle(self, now: float) -> None:
        """Schedule the callbacks of tasks that have ended (drop, duplicate, delay here)."""
        for key, task in list(self._unsettled.items()):
            if task.settled or task.finish_at is None or now < task.finish_at:
                continue
            task.settled = True
            del self._unsettled[key]
            if not task.notice_url or not task.notice_uuid:
                continue
            self.stats["callbacks"] += 1
            if self.rng.random() < self.chaos.drop:
                self.stats["dropped"] += 1
                continue
            copies = 1
            if self.rng.random() < self.chaos.duplicate:
                copies = 2
                self.stats["duplicated"] += 1
            payload = self.callback_payload(task)
            for copy in range(1, copies + 1):
                send_at = task.finish_at + self.rng.uniform(*self.chaos.delay)
                order = self.rng.random() if self.chaos.reorder else next(self._order)
                callback = ScheduledCallback(
                    send_at, order, task.notice_url, task.uid, payload, copy
                )
                heapq.heappush(self.outbox, callback)
