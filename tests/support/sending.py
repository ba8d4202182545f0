"""The queue of submissions with a real worker killed mid-send: the scenario the Celery and
the Tasks worker tests both run (tests/test_celery_worker.py, tests/test_tasks_worker.py)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction

from tests.support.processes import Service, wait_for

CAP = 3
COUNT = 8


def killed_mid_send(
    settings: Any,
    running: list[Service],
    start_worker: Callable[..., Service],
    mode: dict[str, Any],
    request_sending: Callable[[str], object],
) -> None:
    """Queue ``COUNT`` submissions; SIGKILL the worker sending the first one while its
    submit is at the fake (the task is created there, the answer never read); a second
    worker sends the rest. Each reaches Topview once, never more than ``CAP`` unfinished;
    the killed one becomes uncertain (not resent), then its callback resolves it."""
    from topview_callbacks import sending
    from topview_callbacks.client import Submission, TopviewClient
    from topview_callbacks.models import SubmittedTask, TaskStatus
    from topview_callbacks.testing import deliver_notice
    from topview_callbacks.testing.fake.api import FakeTopview
    from topview_callbacks.testing.fake.server import FakeTopviewServer

    fake = FakeTopview()
    handle = fake.handle
    arrived: list[float] = []

    def slow_submits(method: str, url: str, *args: Any) -> Any:
        if method == "POST" and url.endswith("/submit"):
            arrived.append(time.monotonic())
            time.sleep(0.5)  # the window in which the first worker dies
        return handle(method, url, *args)

    fake.handle = slow_submits  # type: ignore[method-assign]
    server = FakeTopviewServer(fake, serve_media=False).start()
    uncertain: set[int] = set()
    seen: list[int] = []
    try:
        overrides = {
            **mode,
            "API_BASE_URL": server.url,
            "MAX_UNFINISHED": CAP,
            "REQUEST_TIMEOUT": 2.0,
        }
        settings.TOPVIEW_CALLBACKS = {**settings.TOPVIEW_CALLBACKS, **overrides}
        first = start_worker(overrides, TOPVIEW_TEST_PREFETCH="1")
        running.append(first)
        with transaction.atomic():
            TopviewClient().enqueue_many(
                "COMMON_TASK_TEXT2IMAGE", [Submission({"prompt": str(i)}) for i in range(COUNT)]
            )
        wait_for(lambda: arrived, 30, "the first submit to reach the fake")
        first.kill(signal.SIGKILL)
        running.append(start_worker(overrides))
        unfinished = SubmittedTask.objects.filter(
            status__in=(TaskStatus.SENDING, TaskStatus.SUBMITTED, TaskStatus.RUNNING)
        )

        def outcomes_come_back() -> bool:
            seen.append(unfinished.count())
            rows = SubmittedTask.objects.filter(status=TaskStatus.UNCERTAIN)
            uncertain.update(rows.values_list("pk", flat=True))
            for task in list(fake.tasks.values()):
                url = urlsplit(task.notice_url or "")
                row = SubmittedTask.objects.filter(submission=url.query.rpartition("=")[2])
                status = row.values_list("status", flat=True).first()
                # The killed worker's submission: its callback waits until the next pass
                # found it lost (2 x REQUEST_TIMEOUT + 10 s) and made it uncertain.
                if task.finish_at is None and status not in (None, TaskStatus.SENDING):
                    fake.finish(task.task_id)
                    payload = fake.runner.callback_payload(task)
                    deliver_notice(payload, path=f"{url.path}?{url.query}")
            request_sending("default")  # as the periodic entry does
            return SubmittedTask.objects.filter(status=TaskStatus.SUCCESS).count() == COUNT

        wait_for(outcomes_come_back, 90, "every submission to end", every=0.5)
    finally:
        server.stop()
    markers = [
        (t.params.get("noticeUrl") or "").rpartition(f"{sending.SUBMISSION_PARAM}=")[2]
        for t in fake.tasks.values()
    ]
    assert len(markers) == COUNT == len(set(markers))  # each reached Topview once
    assert max(seen) <= CAP
    (resolved,) = SubmittedTask.objects.exclude(resolution="")
    assert resolved.resolution.startswith("Resolved by its callback")
    assert uncertain == {resolved.pk}
