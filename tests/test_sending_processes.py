"""Two ``topview_send_queued`` processes racing on PostgreSQL against the fake Topview
over real HTTP: the cap is never exceeded and no submission is sent twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from django.db import connection

from tests.support.processes import ROOT, process_env
from tests.support.settings import UID, topview
from topview_callbacks import sending
from topview_callbacks.client import Submission, TopviewClient
from topview_callbacks.models import SubmittedTask, TaskStatus
from topview_callbacks.processing import process_due
from topview_callbacks.testing import deliver_notice
from topview_callbacks.testing.fake.api import FakeTopview
from topview_callbacks.testing.fake.server import FakeTopviewServer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CAP = 4
SENDER = (
    "import tests.support.worker\n"
    "from django.core.management import call_command\n"
    "call_command('topview_send_queued')\n"
)


def senders(db_name: str, overrides: dict[str, Any]) -> list[subprocess.Popen[bytes]]:
    env = process_env(
        db_name, TOPVIEW_TEST_ROLE="sender", TOPVIEW_TEST_OVERRIDES=json.dumps(overrides)
    )
    return [
        subprocess.Popen([sys.executable, "-c", SENDER], env=env, cwd=ROOT, stderr=subprocess.PIPE)
        for _ in range(2)
    ]


def queue_twelve() -> None:
    TopviewClient().enqueue_many(
        "COMMON_TASK_TEXT2IMAGE", [Submission({"prompt": str(i)}) for i in range(12)]
    )


def test_two_sender_processes_racing(db_name: str, redis_records: None) -> None:
    fake = FakeTopview()
    handle = fake.handle

    def slow(*args: Any) -> Any:
        time.sleep(0.05)  # the two processes' submits overlap
        return handle(*args)

    fake.handle = slow  # type: ignore[method-assign]
    with FakeTopviewServer(fake, serve_media=False) as server:
        overrides = {"API_BASE_URL": server.url, "PROCESSING": "manual", "MAX_UNFINISHED": CAP}
        with topview(**overrides):
            queue_twelve()
        connection.close()  # the subprocesses see the committed rows
        for _round in range(6):
            procs = senders(db_name, overrides)
            for proc in procs:
                _out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err.decode()[-2000:]
            assert fake.runner.unfinished(UID) <= CAP
            assert (
                SubmittedTask.objects.filter(
                    status__in=(TaskStatus.SENDING, TaskStatus.SUBMITTED)
                ).count()
                <= CAP
            )
            if not SubmittedTask.objects.filter(status=TaskStatus.QUEUED).exists():
                break
            # Every running task ends; its outcome, recorded here, frees its slot.
            with topview(**overrides):
                for task in list(fake.tasks.values()):
                    if task.finish_at is None:
                        fake.finish(task.task_id)
                        deliver_notice(fake.runner.callback_payload(task), uid=UID)
                process_due(limit=100)
    assert fake.most_unfinished <= CAP
    markers = [
        (task.params.get("noticeUrl") or "").rpartition(f"{sending.SUBMISSION_PARAM}=")[2]
        for task in fake.tasks.values()
    ]
    assert len(markers) == 12 == len(set(markers))
    assert set(markers) == set(SubmittedTask.objects.values_list("submission", flat=True))
