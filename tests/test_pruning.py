"""pruning.prune and `manage.py topview_prune`."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from topview_callbacks.management.commands.topview_prune import parse_age
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.pruning import prune

pytestmark = pytest.mark.django_db

DAY = 86400


def notice(days_old: float, state: str = NoticeState.PROCESSED, **values: Any) -> Notice:
    received = timezone.now() - timedelta(days=days_old)
    number = Notice.objects.count()
    return Notice.objects.create(
        uuid=f"prune-{number}-{state}-{days_old}",
        biz_type="M2V_PREVIEW",
        task_id=f"task-{number}",
        status="success",
        received_at=received,
        state=state,
        **values,
    )


def remaining() -> set[str]:
    return set(Notice.objects.values_list("uuid", flat=True))


def test_prunes_old_finished_notices_keeps_failed_longer_and_never_unprocessed() -> None:
    kept = {
        notice(10).uuid,
        notice(100, NoticeState.FAILED).uuid,
        notice(400, NoticeState.PENDING).uuid,
    }
    notice(100)
    notice(100, NoticeState.DUPLICATE)
    notice(100, NoticeState.IGNORED)
    notice(400, NoticeState.FAILED)
    result = prune(older_than=timedelta(days=90), failed_older_than=timedelta(days=365))
    assert (result.notices, result.failed_notices) == (3, 1)
    assert remaining() == kept


def test_a_failed_notice_with_a_retry_to_come_is_kept() -> None:
    retrying = notice(400, NoticeState.FAILED, next_attempt_at=timezone.now())
    prune(older_than=timedelta(days=90), failed_older_than=timedelta(days=365))
    assert remaining() == {retrying.uuid}


def test_failed_notices_are_never_pruned_before_the_others() -> None:
    young_failed = notice(50, NoticeState.FAILED)
    result = prune(older_than=timedelta(days=60), failed_older_than=timedelta(days=7))
    assert result.failed_notices == 0
    assert remaining() == {young_failed.uuid}


def test_defaults_come_from_settings(settings: Any) -> None:
    settings.TOPVIEW_CALLBACKS = {
        **settings.TOPVIEW_CALLBACKS,
        "PRUNE_AFTER_DAYS": 40,
        "PRUNE_FAILED_AFTER_DAYS": 80,
    }
    # Ages past the current month, which a partitioned table (PARTITION_NOTICES) drops whole.
    keep = {notice(3).uuid, notice(60, NoticeState.FAILED).uuid}
    notice(50)
    notice(90, NoticeState.FAILED)
    assert prune() == type(prune())(notices=1, failed_notices=1, tasks=0)
    assert remaining() == keep


def test_deletes_in_batches() -> None:
    for _ in range(5):
        notice(100)
    with CaptureQueriesContext(connection) as queries:
        result = prune(older_than=timedelta(days=90), batch_size=2)
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert result.notices == 5
    assert len(deletes) == 3  # 2 + 2 + 1
    assert Notice.objects.count() == 0


def test_final_tasks_go_once_their_notices_are_gone() -> None:
    old = timezone.now() - timedelta(days=100)
    orphan = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="orphan", status=TaskStatus.SUCCESS, completed_at=old
    )
    linked = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="linked", status=TaskStatus.FAIL, completed_at=old
    )
    running = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW", task_id="running", status=TaskStatus.RUNNING, submitted_at=old
    )
    recent = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW",
        task_id="recent",
        status=TaskStatus.SUCCESS,
        completed_at=timezone.now(),
    )
    notice(100, NoticeState.FAILED, submitted_task=linked)
    result = prune(older_than=timedelta(days=90))
    assert result.tasks == 1
    assert set(SubmittedTask.objects.values_list("pk", flat=True)) == {
        linked.pk,
        running.pk,
        recent.pk,
    }
    assert not SubmittedTask.objects.filter(pk=orphan.pk).exists()


def test_tasks_that_expired_long_ago_go_too() -> None:
    def expired(task_id: str, days: int) -> SubmittedTask:
        return SubmittedTask.objects.create(
            biz_type="M2V_PREVIEW",
            task_id=task_id,
            status=TaskStatus.EXPIRED,
            submitted_at=timezone.now() - timedelta(days=days),
        )

    old, recent, with_notice = expired("old", 100), expired("recent", 30), expired("kept", 100)
    notice(100, NoticeState.FAILED, submitted_task=with_notice)
    assert prune(older_than=timedelta(days=90)).tasks == 1
    assert not SubmittedTask.objects.filter(pk=old.pk).exists()
    assert SubmittedTask.objects.filter(pk__in=[recent.pk, with_notice.pk]).count() == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("90", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("1.5d", timedelta(days=1.5)),
    ],
)
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


def test_command_prunes_and_reports() -> None:
    notice(100)
    notice(100, NoticeState.FAILED)
    keep = notice(10).uuid
    out = io.StringIO()
    call_command("topview_prune", "--older-than", "90d", "--failed-older-than", "30d", stdout=out)
    assert (
        "Deleted 1 notice(s), 1 failed notice(s), 0 task(s), 0 archived file(s) and "
        "0 rejection count(s)" in out.getvalue()
    )
    assert remaining() == {keep}


@pytest.mark.parametrize("args", [["--older-than", "ninety"], ["--batch-size", "0"]])
def test_command_refuses_bad_arguments(args: list[str]) -> None:
    with pytest.raises(CommandError):
        call_command("topview_prune", *args, stdout=io.StringIO())
