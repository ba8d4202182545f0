"""The operators' admin screens, through Django's test client."""

from __future__ import annotations

import json
import uuid as uuid_module
import warnings
from datetime import timedelta
from typing import Any

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.support.admin import action, change_url, page_messages
from tests.support.settings import UID_B
from topview_callbacks import processing, signals
from topview_callbacks.admin import actions, changelist, display
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import notice_payload

pytestmark = pytest.mark.django_db

NOTICES = reverse("admin:topview_callbacks_notice_changelist")
TASKS = reverse("admin:topview_callbacks_submittedtask_changelist")
# tests/settings.py points API_BASE_URL here; `responses` answers, nothing leaves the machine.
VOICE_QUERY = "https://api.topview.test/v1/voice/clone/task/query"


def make_notice(biz_type: str = "M2V_PREVIEW", **values: Any) -> Notice:
    """A stored notice built from the same payload Topview sends."""
    payload = notice_payload(
        biz_type,
        status=values.pop("status", "success"),
        task_id=values.pop("task_id", None),
        result=values.pop("result", None),
    )
    result = json.loads(payload["result"])
    fields = {
        "uuid": payload["uuid"],
        "biz_type": biz_type,
        "task_id": payload["taskId"],
        "status": payload["status"],
        "error_message": payload["errorMsg"],
        "result": result,
        "raw_body": json.dumps(payload),
        "headers": {"Content-Type": "application/json", "Topview-Uid": "(removed)"},
        "remote_addr": "127.0.0.1",
    }
    fields.update(values)
    return Notice.objects.create(**fields)


@pytest.fixture
def operator(client: Client) -> Client:
    """A staff user with view permissions and the replay permission, not a superuser."""
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="topview_callbacks",
            codename__in=["view_notice", "view_submittedtask", "replay_notice"],
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    """A staff user who may look but not act."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="topview_callbacks",
            codename__in=["view_notice", "view_submittedtask"],
        )
    )
    client = Client()
    client.force_login(user)
    return client


def test_changelist_shows_the_columns_and_a_coloured_state(operator: Client) -> None:
    notice = make_notice("VOICE_CLONE", state=NoticeState.FAILED, source="poll", account="brand-b")
    response = operator.get(NOTICES)
    assert response.status_code == 200
    html = response.content.decode()
    for text in (notice.task_id, "VOICE_CLONE", "brand-b", "Poll", "success"):
        assert text in html
    assert f'<span style="color: {display.STATE_COLOURS["failed"]}' in html
    for header in ("received at", "bizType", "task id", "processing state", "account"):
        assert header in html.lower() or header in html


def test_biz_type_filter_lists_known_and_unknown_types_and_filters(operator: Client) -> None:
    wanted = make_notice("M2V_EXPORT")
    other = make_notice("VOICE_CLONE")
    unknown = make_notice("FUTURE_PRODUCT_X", result={"anything": 1})
    response = operator.get(NOTICES)
    html = response.content.decode()
    assert "?biz_type=FUTURE_PRODUCT_X" in html
    assert "FUTURE_PRODUCT_X (unknown)" in html
    assert "?biz_type=COMMON_TASK_TEXT2IMAGE" in html  # known, even with no rows

    response = operator.get(NOTICES, {"biz_type": "M2V_EXPORT"})
    assert list(response.context["cl"].result_list) == [wanted]
    response = operator.get(NOTICES, {"biz_type": "FUTURE_PRODUCT_X"})
    assert list(response.context["cl"].result_list) == [unknown]
    assert other not in response.context["cl"].result_list


def test_status_state_source_and_account_filters(operator: Client) -> None:
    failed = make_notice(status="fail", state=NoticeState.FAILED, source="poll", account="brand-b")
    make_notice(state=NoticeState.PROCESSED)
    for params in (
        {"status": "fail"},
        {"state__exact": "failed"},
        {"source__exact": "poll"},
        {"account": "brand-b"},
    ):
        response = operator.get(NOTICES, params)
        assert list(response.context["cl"].result_list) == [failed], params


def test_search_is_an_exact_match_on_task_id_or_uuid(operator: Client) -> None:
    notice = make_notice(task_id="task-abc-123")
    make_notice(task_id="task-abc-1234")
    assert list(operator.get(NOTICES, {"q": "task-abc-123"}).context["cl"].result_list) == [notice]
    assert list(operator.get(NOTICES, {"q": notice.uuid}).context["cl"].result_list) == [notice]
    assert list(operator.get(NOTICES, {"q": "task-abc"}).context["cl"].result_list) == []


def test_date_hierarchy_lists_the_years_then_the_months(operator: Client) -> None:
    now = timezone.now()
    make_notice(received_at=now.replace(year=now.year - 2))
    make_notice(received_at=now)
    html = operator.get(NOTICES).content.decode()
    for year in range(now.year - 2, now.year + 1):
        assert f"received_at__year={year}" in html
    response = operator.get(NOTICES, {"received_at__year": now.year})
    html = response.content.decode()
    assert f"received_at__month=12&amp;received_at__year={now.year}" in html
    assert len(response.context["cl"].result_list) == 1


def test_detail_page_shows_body_result_headers_traceback_task_and_media(operator: Client) -> None:
    notice = make_notice("PRODUCT_AVATAR_IMAGE2VIDEO", last_error="Traceback\nValueError: boom")
    task = SubmittedTask.objects.create(biz_type=notice.biz_type, task_id=notice.task_id)
    Notice.objects.filter(pk=notice.pk).update(submitted_task=task)
    response = operator.get(change_url(notice))
    assert response.status_code == 200
    html = response.content.decode()
    video = notice.result["finishedVideoUrl"]
    cover = notice.result["aiAvatar"]["coverUrl"]
    assert f'<video controls preload="none" src="{video}"' in html
    assert f'<summary>Show image</summary><img src="{cover}"' in html
    assert "ValueError: boom" in html
    assert "&quot;finishedVideoUrl&quot;: " in html  # the parsed result, indented
    assert "(removed)" in html  # headers
    assert f'href="{change_url(task)}"' in html
    assert 'name="_save"' not in html and 'name="task_id"' not in html  # read-only


def test_audio_preview(operator: Client) -> None:
    notice = make_notice("VOICE_CLONE")
    html = operator.get(change_url(notice)).content.decode()
    assert f'<audio controls preload="none" src="{notice.result["voice"]["demoAudioUrl"]}"' in (
        html
    )


def test_payload_strings_are_escaped_and_unsafe_urls_never_rendered(operator: Client) -> None:
    script = "<script>alert('x')</script>"
    notice = make_notice(
        "M2V_PREVIEW",
        task_id=f"t{script}",
        result={
            "previewVideos": [
                {"videoUrl": "javascript:alert(1)", "coverUrl": "data:image/png;base64,AAAA"},
                {"videoUrl": 'https://cdn.example.com/a.mp4" onerror="alert(2)', "coverUrl": ""},
            ],
            "title": script,
        },
        raw_body=f'{{"taskId": "{script}"}}',
        headers={"X-Evil": script},
        last_error=script,
        error_message=script,
    )
    for url in (NOTICES, change_url(notice)):
        html = operator.get(url).content.decode()
        assert script not in html
        assert "&lt;script&gt;alert(" in html
        assert 'src="javascript:' not in html and 'href="javascript:' not in html
        assert 'src="data:' not in html
        assert 'onerror="alert(2)' not in html
    html = operator.get(change_url(notice)).content.decode()
    # The https URL with a quote in it stays inside its attribute, escaped.
    assert 'src="https://cdn.example.com/a.mp4&quot; onerror=&quot;alert(2)"' in html


def test_media_preview_refuses_non_http_urls_even_if_given_them() -> None:
    html = display.media_preview(
        [("video", "javascript:alert(1)"), ("image", "data:x"), ("audio", "https://a.test/x.mp3")]
    )
    assert "javascript:" not in html and "data:" not in html
    assert 'src="https://a.test/x.mp3"' in html


def test_notices_cannot_be_added_or_edited(operator: Client, admin_client: Client) -> None:
    notice = make_notice()
    for client in (operator, admin_client):
        assert client.get(reverse("admin:topview_callbacks_notice_add")).status_code == 403
        response = client.post(change_url(notice), {"task_id": "changed", "status": "fail"})
        assert response.status_code == 403
        notice.refresh_from_db()
        assert notice.task_id != "changed"


def test_reprocess_asks_for_confirmation_then_reruns_the_receivers(
    operator: Client, failing_receiver: Any
) -> None:
    notice = make_notice()
    processing.process_due(notice_id=notice.pk)
    notice.refresh_from_db()
    assert notice.state == NoticeState.FAILED
    calls = failing_receiver.calls

    response = action(operator, NOTICES, "reprocess", [notice])
    assert response.status_code == 200
    assert b"Yes, reprocess" in response.content
    assert notice.task_id.encode() in response.content
    assert failing_receiver.calls == calls  # nothing ran yet

    failing_receiver.fixed = True
    response = action(operator, NOTICES, "reprocess", [notice], confirmed="yes")
    assert failing_receiver.calls == calls + 1
    notice.refresh_from_db()
    assert notice.state == NoticeState.PROCESSED
    assert page_messages(response) == [
        (
            "success",
            f"{notice.biz_type} {notice.task_id} ({notice.uuid}): reprocessed, the receivers ran.",
        )
    ]


def test_reprocess_reports_a_receiver_that_fails_again_per_row(
    operator: Client, failing_receiver: Any
) -> None:
    broken, other = make_notice(), make_notice()
    response = action(operator, NOTICES, "reprocess", [broken, other], confirmed="yes")
    found = page_messages(response)
    assert len(found) == 2
    assert all(level == "error" for level, _ in found)
    assert all("RuntimeError: the receiver is broken" in text for _, text in found)
    assert {broken.uuid, other.uuid} == {
        u for u in (broken.uuid, other.uuid) for _, text in found if u in text
    }


def test_reprocess_refuses_too_many_rows(
    operator: Client, failing_receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "MAX_ACTION_ROWS", 2)
    rows = [make_notice() for _ in range(3)]
    response = action(operator, NOTICES, "reprocess", rows, confirmed="yes")
    assert failing_receiver.calls == 0
    assert page_messages(response)[0][0] == "error"
    assert "at most 2" in page_messages(response)[0][1]


def test_mark_ignored_stops_retries(operator: Client) -> None:
    failed = make_notice(state=NoticeState.FAILED, next_attempt_at=timezone.now())
    pending = make_notice()
    response = action(operator, NOTICES, "mark_ignored", [failed, pending])
    failed.refresh_from_db()
    pending.refresh_from_db()
    assert (failed.state, pending.state) == (NoticeState.IGNORED, NoticeState.IGNORED)
    assert failed.next_attempt_at is None
    assert page_messages(response) == [("success", "2 notices marked ignored.")]
    assert processing.process_due().claimed == 0  # nothing is due any more


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_mark_ignored_leaves_a_notice_an_attempt_holds_alone(operator: Client) -> None:
    failed, busy = make_notice(state=NoticeState.FAILED), make_notice()
    holder = connections.create_connection("default")  # another process's attempt
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM topview_callbacks_notice WHERE id = %s FOR UPDATE", [busy.pk]
            )
        response = action(operator, NOTICES, "mark_ignored", [failed, busy])
    finally:
        holder.rollback()
        holder.close()
    failed.refresh_from_db()
    busy.refresh_from_db()
    assert (failed.state, busy.state) == (NoticeState.IGNORED, NoticeState.PENDING)
    assert page_messages(response) == [("success", "1 notice marked ignored.")]


def test_actions_need_the_replay_permission(viewer: Client, failing_receiver: Any) -> None:
    notice = make_notice(state=NoticeState.FAILED)
    html = viewer.get(NOTICES).content.decode()
    assert 'value="reprocess"' not in html and 'value="mark_ignored"' not in html
    action(viewer, NOTICES, "reprocess", [notice], confirmed="yes")
    action(viewer, NOTICES, "mark_ignored", [notice])
    notice.refresh_from_db()
    assert notice.state == NoticeState.FAILED
    assert failing_receiver.calls == 0
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t1")
    assert 'value="poll_now"' not in viewer.get(TASKS).content.decode()
    assert viewer.get(change_url(task)).status_code == 200


@pytest.fixture
def topview_api() -> Any:
    """Topview's query endpoint; a request nobody registered fails the test."""
    with responses.RequestsMock() as rsps:
        yield rsps


def query_answer(
    rsps: Any, task_id: str, result: Any, code: str = "200", message: str = ""
) -> None:
    rsps.get(
        VOICE_QUERY,
        json={"code": code, "message": message or "Success", "result": result},
        match=[
            responses.matchers.query_param_matcher(
                {"taskId": task_id, "needCloudFrontUrl": "false"}
            )
        ],
    )


def test_poll_now_records_and_processes_topviews_outcome(
    operator: Client, topview_api: Any, record_signal: Any
) -> None:
    outcomes = record_signal(signals.task_outcome)
    voice = {"voiceId": "v1", "voiceName": "Ann", "demoAudioUrl": "https://cdn.test/v1.mp3"}
    query_answer(
        topview_api,
        "t-poll",
        {"taskId": "t-poll", "status": "success", "errorMsg": None, "voice": voice},
    )
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t-poll")
    response = action(operator, TASKS, "poll_now", [task])
    notice = Notice.objects.get()
    assert (notice.source, notice.uuid, notice.state, notice.submitted_task) == (
        "poll",
        "poll:VOICE_CLONE:t-poll",
        NoticeState.PROCESSED,
        task,
    )
    assert [call["notice"].pk for call in outcomes.calls] == [notice.pk]
    task.refresh_from_db()
    assert (task.status, task.poll_count, task.result["voice"]) == (TaskStatus.SUCCESS, 1, voice)
    assert page_messages(response) == [
        (
            "success",
            "VOICE_CLONE t-poll: polled, outcome: "
            "VOICE_CLONE t-poll success (poll:VOICE_CLONE:t-poll)",
        )
    ]


def test_poll_now_on_an_unfinished_task_records_nothing(operator: Client, topview_api: Any) -> None:
    query_answer(topview_api, "t-q", {"taskId": "t-q", "status": "running", "errorMsg": None})
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t-q", account="brand-b")
    response = action(operator, TASKS, "poll_now", [task])
    # One query, with the task's own account's credentials, not the default account's.
    assert [call.request.headers["Topview-Uid"] for call in topview_api.calls] == [UID_B]
    assert not Notice.objects.exists()
    task.refresh_from_db()
    assert (task.status, task.poll_count) == (TaskStatus.RUNNING, 1)
    assert page_messages(response) == [("success", "VOICE_CLONE t-q: polled, outcome: none yet")]


def test_poll_now_reports_an_error_per_task(operator: Client, topview_api: Any) -> None:
    query_answer(topview_api, "t-err", None, code="5003", message="Server busy, please try later")
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t-err")
    response = action(operator, TASKS, "poll_now", [task])
    assert not Notice.objects.exists()
    task.refresh_from_db()
    assert task.status == TaskStatus.SUBMITTED
    assert page_messages(response) == [
        (
            "error",
            "VOICE_CLONE t-err: polling failed: Topview error 5003: Server busy, please try later",
        )
    ]


def test_task_screens_show_waiting_time_result_and_notices_inline(operator: Client) -> None:
    done = SubmittedTask.objects.create(
        biz_type="VOICE_CLONE",
        task_id="t-done",
        status=TaskStatus.SUCCESS,
        submitted_at=timezone.now() - timedelta(minutes=5),
        completed_at=timezone.now() - timedelta(minutes=2, seconds=30),
        result={"voice": {"demoAudioUrl": "https://cdn.example.com/v.mp3"}},
    )
    waiting = SubmittedTask.objects.create(
        biz_type="M2V_PREVIEW",
        task_id="t-wait",
        submitted_at=timezone.now() - timedelta(hours=1, minutes=1),
    )
    notice = make_notice("VOICE_CLONE", task_id="t-done", submitted_task=done)
    html = operator.get(TASKS).content.decode()
    assert "0:02:30" in html
    assert "<em>1:01:" in html
    assert list(operator.get(TASKS, {"status__exact": "submitted"}).context["cl"].result_list) == [
        waiting
    ]
    assert list(operator.get(TASKS, {"q": "t-done"}).context["cl"].result_list) == [done]
    html = operator.get(change_url(done)).content.decode()
    assert notice.uuid in html  # inline
    assert 'src="https://cdn.example.com/v.mp3"' in html
    assert "&quot;demoAudioUrl&quot;" in html
    assert operator.get(reverse("admin:topview_callbacks_submittedtask_add")).status_code == 403


def test_changelists_run_a_fixed_number_of_queries(
    operator: Client, django_assert_max_num_queries: Any
) -> None:
    def queries(url: str) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as context:
            assert operator.get(url).status_code == 200
        return len(context)

    for _ in range(3):
        task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id=uuid_module.uuid4().hex)
        make_notice("VOICE_CLONE", task_id=task.task_id, submitted_task=task)
    few = (queries(NOTICES), queries(TASKS))
    for _ in range(20):
        task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id=uuid_module.uuid4().hex)
        make_notice("VOICE_CLONE", task_id=task.task_id, submitted_task=task)
    assert (queries(NOTICES), queries(TASKS)) == few
    # Session, user, 2 x permissions, bizTypes, count, rows, date span; on PostgreSQL
    # also EXPLAIN, and the count's savepoint, timeout, timeout reset and release.
    with django_assert_max_num_queries(13):
        operator.get(NOTICES)


def test_the_counts_are_exact_on_small_tables(operator: Client) -> None:
    for _ in range(3):
        make_notice()
    response = operator.get(NOTICES)
    assert response.context["cl"].result_count == 3
    assert response.context["cl"].paginator.estimated is False
    assert b"PostgreSQL's estimate" not in response.content


@pytest.mark.postgres
def test_big_results_are_estimated_on_postgresql(
    operator: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    monkeypatch.setattr(changelist, "EXACT_COUNT_LIMIT", 5)
    for _ in range(30):
        make_notice()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE topview_callbacks_notice")
    response = operator.get(NOTICES)
    cl = response.context["cl"]
    assert cl.paginator.estimated is True
    assert cl.result_count > 5
    assert b"PostgreSQL's estimate" in response.content
    # A filter matching fewer rows than the limit is counted exactly.
    make_notice(state=NoticeState.FAILED)
    response = operator.get(NOTICES, {"state__exact": "failed"})
    assert response.context["cl"].result_count == 1
    assert response.context["cl"].paginator.estimated is False


def test_distinct_values_finds_every_value_of_an_indexed_column() -> None:
    for biz_type in ("VOICE_CLONE", "NEW_TYPE", "VOICE_CLONE", "M2V_EXPORT"):
        make_notice(biz_type, result={})
    assert changelist.distinct_values(Notice, "biz_type") == [
        "M2V_EXPORT",
        "NEW_TYPE",
        "VOICE_CLONE",
    ]
    assert changelist.distinct_values(Notice, "biz_type", limit=1) == ["M2V_EXPORT"]


@pytest.mark.postgres
def test_a_slow_exact_count_gives_up_and_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import connection

    monkeypatch.setattr(changelist, "COUNT_TIMEOUT_MS", 50)
    for _ in range(3):
        make_notice()
    slow = Notice.objects.extra(where=["pg_sleep(0.1) IS NOT NULL"])  # 0.1 s a row
    paginator = changelist.EstimatedCountPaginator(slow, 10)
    assert paginator.count == changelist.planner_estimate(slow)  # the planner's, not 3
    assert paginator.estimated is True
    fast = changelist.EstimatedCountPaginator(Notice.objects.all(), 10)
    assert (fast.count, fast.estimated) == (3, False)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"  # the 50 ms limit did not outlive the count


def test_the_admin_raises_no_deprecation_warning(
    operator: Client, failing_receiver: Any, topview_api: Any
) -> None:
    """Every page and action, on the installed Django (Django 6.1 deprecated overriding
    ``get_actions()`` without ``action_location``, as a PendingDeprecationWarning)."""
    notice = make_notice(state=NoticeState.FAILED)
    query_answer(topview_api, "t-warn", {"taskId": "t-warn", "status": "running"})
    task = SubmittedTask.objects.create(biz_type="VOICE_CLONE", task_id="t-warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for url in (NOTICES, TASKS, change_url(notice), change_url(task)):
            assert operator.get(url).status_code == 200
        action(operator, NOTICES, "reprocess", [notice])
        action(operator, NOTICES, "reprocess", [notice], confirmed="yes")
        action(operator, NOTICES, "mark_ignored", [notice])
        action(operator, TASKS, "poll_now", [task])
    deprecations = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if issubclass(w.category, DeprecationWarning | PendingDeprecationWarning)
    ]
    assert deprecations == []
