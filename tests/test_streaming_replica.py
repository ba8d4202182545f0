"""READ_DATABASE against a real streaming replica, with its replay paused.

`nox -s replica` starts a private primary and a hot standby of it
(scripts/streaming_replica.sh): ``default`` is the primary, ``replica`` the standby. While
the standby's replay is paused it still shows the past: the admin's lists, the dashboard
and ``topview_health`` show that past, and processing and polling, which act on what they
read, still see and change the present on the primary.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import responses
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.support.replica import caught_up
from tests.support.settings import topview
from topview_callbacks import health, polling, processing
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, notice_payload

NOTICES = reverse("admin:topview_callbacks_notice_changelist")
TASKS = reverse("admin:topview_callbacks_submittedtask_changelist")
DASHBOARD = "/admin/topview_callbacks/notice/dashboard/"
QUERY = "https://api.topview.test/v1/voice/clone/task/query"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("TOPVIEW_TEST_REPLICA_PORT"),
        reason="needs a streaming replica: nox -s replica (scripts/streaming_replica.sh)",
    ),
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]


def on_replica(sql: str) -> object:
    with connections["replica"].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


@contextlib.contextmanager
def paused_replay() -> Iterator[None]:
    """The standby stops replaying once it has caught up: it keeps showing that moment."""
    caught_up()
    assert on_replica("SELECT pg_is_in_recovery()") is True  # a standby, not the primary
    on_replica("SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + 10
    while on_replica("SELECT pg_get_wal_replay_pause_state()") != "paused":
        assert time.monotonic() < deadline, "the standby did not pause its replay"
        time.sleep(0.01)
    try:
        yield
    finally:
        on_replica("SELECT pg_wal_replay_resume()")


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("boss", "b@example.com", "pw"))
    return client


def stuck_notices(database: str | None) -> str:
    """``topview_health --json``'s summary of waiting notices, read from ``database``."""
    out = io.StringIO()
    # A warning or critical level exits non-zero; the report is printed all the same.
    with topview(READ_DATABASE=database), contextlib.suppress(SystemExit):
        call_command("topview_health", "--json", stdout=out)
    checks = json.loads(out.getvalue())["checks"]
    return next(check["summary"] for check in checks if check["name"] == "stuck_notices")


def test_the_screens_show_the_replica_while_processing_works_on_the_primary(
    staff: Client,
) -> None:
    with topview(PROCESSING="manual"):
        seen = notice_payload()
        deliver_notice(seen)
    waiting = Notice.objects.get()
    caught_up()
    replayed = stuck_notices("replica")
    assert "No notice is waiting" not in replayed  # the replica has the waiting notice
    with paused_replay():
        with topview(PROCESSING="manual"):
            unseen = notice_payload()
            deliver_notice(unseen)  # stored on the primary only
        # Processing reads the primary: both notices, though the replica has one, pending.
        assert len(processing.process_due().notices) == 2
        assert set(Notice.objects.values_list("state", flat=True)) == {NoticeState.PROCESSED}
        assert "No notice is waiting" in stuck_notices(None)
        assert stuck_notices("replica") == replayed
        with topview(READ_DATABASE="replica"):
            assert health.measure().pending == 1
            dashboard = staff.get(DASHBOARD)
            missing = staff.get(NOTICES, {"q": unseen["uuid"]})
            listed = staff.get(NOTICES, {"q": seen["uuid"]})
        assert dashboard.status_code == missing.status_code == listed.status_code == 200
        # The dashboard links the notice the replica still has waiting.
        assert f"/admin/topview_callbacks/notice/{waiting.pk}/change/" in dashboard.text
        assert missing.context["cl"].result_count == 0
        assert [row.state for row in listed.context["cl"].result_list] == [NoticeState.PENDING]
    caught_up()
    with topview(READ_DATABASE="replica"):
        assert health.measure().pending == 0
        assert staff.get(NOTICES, {"q": unseen["uuid"]}).context["cl"].result_count == 1
    assert "No notice is waiting" in stuck_notices("replica")


def test_a_delivery_is_stored_and_processed_once_while_the_replica_stands_still() -> None:
    payload = notice_payload()
    with paused_replay(), topview(READ_DATABASE="replica"):
        assert deliver_notice(payload).status_code == 200
        assert deliver_notice(payload).status_code == 200  # a redelivery: found on the primary
        notice = Notice.objects.get()
        assert notice.state == NoticeState.PROCESSED
        assert health.measure().last_notice_at is None  # the replica has not seen it
    caught_up()
    assert Notice.objects.using("replica").get().state == NoticeState.PROCESSED


@responses.activate
def test_polling_finds_a_task_only_the_primary_has(staff: Client) -> None:
    result = {"taskId": "t-1", "status": "success", "errorMsg": None, "voice": {"voiceId": "v1"}}
    responses.get(QUERY, json={"code": "200", "message": "Success", "result": result})
    with paused_replay(), topview(READ_DATABASE="replica"):
        now = timezone.now()
        SubmittedTask.objects.create(
            biz_type="VOICE_CLONE",
            task_id="t-1",
            notice_uuid="uuid-t-1",
            submitted_at=now - timedelta(minutes=5),
            next_poll_at=now - timedelta(seconds=1),
        )
        report = polling.reconcile()
        assert (report.polled, report.delivered, report.errors) == (1, 1, 0)
        assert SubmittedTask.objects.get().status == TaskStatus.SUCCESS
        assert staff.get(TASKS).context["cl"].result_count == 0  # the list reads the replica
    caught_up()
    with topview(READ_DATABASE="replica"):
        assert staff.get(TASKS).context["cl"].result_count == 1
