"""The fake Topview's tasks: how they run, what a query says, when their callbacks go.

``FakeTaskRunner`` is the state machine under ``FakeTopview`` (``fake_topview``): tasks run
on its clock from ``init`` to ``running`` to ``success`` or ``fail``, and each ended task's
callback POSTs are scheduled with the chaos asked for (drop, duplicate, delay, reorder).
A transport takes the due ones (``pop_due``) and sends them.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from topview_callbacks.biz_types import BizType

FAIL_MESSAGE = "Generation failed (fake Topview)."


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
class Delivery:
    """One callback POST the fake will send (or sent)."""

    send_at: float
    order: float
    url: str = field(compare=False)
    uid: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    copy: int = field(compare=False, default=1)


class FakeTaskRunner:
    """Fake tasks and their scheduled callbacks; thread-safe (one lock guards the state).

    The options are ``FakeTopview``'s (which see): ``duration``, ``fail_rate``, ``drop``,
    ``duplicate``, ``delay``, ``reorder``, ``seed`` and ``clock``.
    """

    def __init__(
        self,
        *,
        duration: tuple[float, float] | None = None,
        fail_rate: float = 0.0,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
        reorder: bool = False,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.duration = duration
        self.fail_rate = fail_rate
        self.drop = drop
        self.duplicate = duplicate
        self.delay = delay
        self.reorder = reorder
        self.clock = clock
        self.rng = random.Random(seed)
        self.tasks: dict[tuple[str, str], FakeTask] = {}
        self.outbox: list[Delivery] = []
        self.sent: list[tuple[Delivery, int | None, bool]] = []  # (delivery, HTTP status, acked)
        self.stats = {"callbacks": 0, "dropped": 0, "duplicated": 0, "sent": 0, "acked": 0}
        self._lock = threading.RLock()
        self._order = itertools.count()

    # Test controls -------------------------------------------------------------------

    def finish(
        self, task_id: str, status: str = "success", *, biz_type: str | None = None
    ) -> FakeTask:
        """End a task now with ``status``; its callback becomes due (after ``delay``)."""
        with self._lock:
            task = self._find(task_id, biz_type)
            task.outcome = status
            task.finish_at = min(task.finish_at or self.clock(), self.clock())
            if status != "success":
                task.output = {}
            return task

    def task(self, task_id: str, biz_type: str | None = None) -> FakeTask:
        with self._lock:
            return self._find(task_id, biz_type)

    def idle(self) -> bool:
        """True when every timed task has ended and every callback has been sent."""
        with self._lock:
            self._settle(self.clock())
            timed = [t for t in self.tasks.values() if t.finish_at is not None]
            return all(t.settled for t in timed) and not self.outbox

    def pop_due(self, now: float | None = None) -> list[Delivery]:
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
            times += [t.finish_at for t in self.tasks.values() if t.finish_at and not t.settled]
            return max(0.0, min(times) - now) if times else None

    def record_sent(self, delivery: Delivery, status: int | None, acked: bool) -> None:
        with self._lock:
            self.sent.append((delivery, status, acked))
            self.stats["sent"] += 1
            self.stats["acked"] += int(acked)

    def deliver_callbacks(self, send: Callable[[Delivery], Any] | None = None) -> int:
        """Send every due callback with ``send`` (default: in-process ``deliver_notice``)."""
        if send is None:
            from topview_callbacks.testing import deliver_notice

            def send(delivery: Delivery) -> Any:
                path = urlsplit(delivery.url).path or None
                return deliver_notice(delivery.payload, uid=delivery.uid, path=path)

        due = self.pop_due()
        for delivery in due:
            response = send(delivery)
            status = getattr(response, "status_code", None)
            self.record_sent(delivery, status, status == 200)
        return len(due)

    # Tasks and callbacks -------------------------------------------------------------

    def _new_task(self, biz_type: str, task_id: str, data: dict[str, Any], uid: str) -> FakeTask:
        from topview_callbacks.testing import success_result

        now = self.clock()
        notice_url = data.get("noticeUrl") or None
        finish_at = None
        if self.duration is not None:
            finish_at = now + self.rng.uniform(*self.duration)
        outcome = "fail" if self.rng.random() < self.fail_rate else "success"
        task = FakeTask(
            biz_type=biz_type,
            task_id=task_id,
            notice_uuid=uuid_module.uuid4().hex if notice_url else None,
            notice_url=notice_url,
            uid=uid,
            params=data,
            submitted_at=now,
            finish_at=finish_at,
            outcome=outcome,
            output=success_result(biz_type) if outcome == "success" else {},
        )
        self.tasks[(biz_type, task_id)] = task
        return task

    def view(self, task: FakeTask) -> dict[str, Any]:
        """The query-task result of ``task`` now (for M2V, with its export, if any)."""
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
            item: dict[str, Any] = {
                "scriptId": 0,
                "status": None,
                "videoUrl": None,
                "coverUrl": None,
            }
            if export is not None:
                export_state = export.state(now)
                item = {
                    **item,
                    "status": export_state if export_state in ("success", "fail") else "running",
                }
                if export_state == "success":
                    item.update(export.output["exportVideos"][0])
            result["exportVideos"] = [item]
        return result

    def _settle(self, now: float) -> None:
        """Schedule the callbacks of tasks that have ended (drop, duplicate, delay here)."""
        for task in self.tasks.values():
            if task.settled or task.finish_at is None or now < task.finish_at:
                continue
            task.settled = True
            if not task.notice_url or not task.notice_uuid:
                continue
            self.stats["callbacks"] += 1
            if self.rng.random() < self.drop:
                self.stats["dropped"] += 1
                continue
            copies = 1
            if self.rng.random() < self.duplicate:
                copies = 2
                self.stats["duplicated"] += 1
            payload = self.callback_payload(task)
            for copy in range(1, copies + 1):
                send_at = task.finish_at + self.rng.uniform(*self.delay)
                order = self.rng.random() if self.reorder else next(self._order)
                heapq.heappush(
                    self.outbox, Delivery(send_at, order, task.notice_url, task.uid, payload, copy)
                )

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        """The notice body, as the contract shows it: ``result`` is a JSON string."""
        state = task.state(self.clock())
        view = self.view(task)
        return {
            "uuid": task.notice_uuid,
            "bizType": task.biz_type,
            "taskId": task.task_id,
            "status": state,
            "errorMsg": "" if state == "success" else FAIL_MESSAGE,
            "result": json.dumps(view, separators=(",", ":")),
        }

    def _find(self, task_id: str, biz_type: str | None) -> FakeTask:
        for (kind, found_id), task in self.tasks.items():
            if found_id == task_id and biz_type in (None, kind):
                return task
        raise KeyError(f"The fake knows no task {task_id!r}")
