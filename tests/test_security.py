"""Hardening (issue 11): each hole found by attacking the app, closed, through public interfaces.

The test names say which finding they cover: ``f1_`` ... ``f11_``. docs/security.md cites them.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import responses
from django.core.checks import Tags, run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.support.settings import UID, UID_B, topview
from topview_callbacks import signals, sweeping
from topview_callbacks.client import TopviewClient
from topview_callbacks.exceptions import TopviewError
from topview_callbacks.logs import RedactNoticeTokens
from topview_callbacks.models import Notice, NoticeState, SubmittedTask, TaskStatus
from topview_callbacks.testing import deliver_notice, notice_payload

pytestmark = pytest.mark.django_db

BASE = "https://api.topview.test"
TOKEN_GLOBAL, TOKEN_B = "global-token-0123456789", "brand-b-token-0123456789"
M2V_QUERY = f"{BASE}/v1/m2v/task/query"
VOICE_QUERY = f"{BASE}/v1/voice/clone/task/query"


@pytest.fixture
def api() -> Any:
    # Any request not registered fails: "no call to Topview" is checked by absence.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def deliver(django_capture_on_commit_callbacks: Any) -> Any:
    def post(payload: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return deliver_notice(payload, **kwargs)

    return post


def query_answer(status: str, task_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "code": "200",
        "message": "Success",
        "result": {"taskId": task_id, "status": status, "errorMsg": None, **extra},
    }


# --- 1. one account completing another account's task ------------------------------------


@pytest.mark.parametrize("verify", [False, True])
def test_f1_a_notice_from_another_account_is_ignored_and_never_touches_its_task(
    deliver: Any, record_signal: Any, api: Any, caplog: Any, verify: bool
) -> None:
    task = SubmittedTask.objects.create(account="default", biz_type="M2V_PREVIEW", task_id="t-a")
    fired = record_signal(signals.task_outcome)
    changed = record_signal(signals.task_status_changed)
    with topview(VERIFY_WITH_QUERY=verify), caplog.at_level(logging.WARNING):
        response = deliver(notice_payload("M2V_PREVIEW", task_id="t-a"), uid=UID_B)
    assert response.status_code == 200  # stored and acknowledged: Topview need not retry
    notice = Notice.objects.get()
    assert (notice.state, notice.account, notice.submitted_task_id) == (
        NoticeState.IGNORED,
        "brand-b",
        None,
    )
    # The operator's answer in the admin (security.md, F1): whose task, which Topview-Uid,
    # and that nothing happened; pinned whole, on the inline path and the verified one.
    assert notice.last_error == (
        "The task M2V_PREVIEW t-a belongs to account 'default', but the notice came with the "
        "Topview-Uid of account 'brand-b': nothing was recorded or fired."
    )
    assert fired.calls == [] and changed.calls == []
    task.refresh_from_db()
    assert (task.status, task.result, task.completed_at) == (TaskStatus.SUBMITTED, None, None)
    assert len(api.calls) == 0  # not even a verification query on the sender's behalf
    assert any(
        r.levelno == logging.WARNING and notice.uuid in r.getMessage() for r in caplog.records
    )


def test_f1_the_owner_still_gets_its_outcome_after_a_foreign_notice(
    deliver: Any, record_signal: Any
) -> None:
    SubmittedTask.objects.create(account="brand-b", biz_type="M2V_PREVIEW", task_id="t-b")
    fired = record_signal(signals.task_outcome)
    with topview():
        deliver(notice_payload("M2V_PREVIEW", task_id="t-b"), uid=UID)
        deliver(notice_payload("M2V_PREVIEW", task_id="t-b"), uid=UID_B)
    assert [call["notice"].account for call in fired.calls] == ["brand-b"]
    assert SubmittedTask.objects.get().status == TaskStatus.SUCCESS


# --- 2. VERIFY_WITH_QUERY bypassed by an unknown bizType ----------------------------------


@pytest.mark.parametrize("biz_type", ["FUTURE_PRODUCT", "m2v_preview"])
def test_f2_with_verification_an_unknown_or_miscased_biz_type_never_fires(
    deliver: Any, record_signal: Any, api: Any, biz_type: str
) -> None:
    fired = record_signal(signals.task_outcome)
    payload = notice_payload("M2V_PREVIEW", task_id="t-x")
    payload["bizType"] = biz_type
    with topview(VERIFY_WITH_QUERY=True):
        assert deliver(payload).status_code == 200
    notice = Notice.objects.get()
    assert notice.state == NoticeState.IGNORED
    assert "cannot be verified" in notice.last_error
    assert fired.calls == []
    assert not SubmittedTask.objects.exists()


def test_f2_without_verification_unknown_biz_types_are_still_delivered(
    deliver: Any, record_signal: Any
) -> None:
    fired = record_signal(signals.task_outcome)
    payload = {**notice_payload("M2V_PREVIEW"), "bizType": "FUTURE_PRODUCT"}
    with topview():
        deliver(payload)
    assert len(fired.calls) == 1


# --- 3. unverifiable notices retried forever, and starving the sweep ---------------------


def test_f3_an_unverifiable_notice_has_an_attempt_cap_and_ends_failed(
    deliver: Any, record_signal: Any, api: Any
) -> None:
    api.get(M2V_QUERY, json={"code": "5003", "message": "server busy", "result": None})
    fired = record_signal(signals.task_outcome)
    failed = record_signal(signals.notice_processing_failed)
    with topview(VERIFY_WITH_QUERY=True, MAX_ATTEMPTS=3, RETRY_BACKOFF=0):
        deliver(notice_payload("M2V_PREVIEW", task_id="spoofed"))
        for _ in range(6):
            call_command("topview_process_pending", stdout=StringIO())
    notice = Notice.objects.get()
    assert (notice.state, notice.attempts) == (NoticeState.FAILED, 3)
    assert "MAX_ATTEMPTS" in notice.last_error and "server busy" in notice.last_error
    assert len(api.calls) == 3  # one query per attempt, then never again
    assert fired.calls == [] and len(failed.calls) == 1


def test_f3_notices_that_keep_failing_wait_their_backoff_and_fresh_ones_go_first(
    deliver: Any, record_signal: Any, api: Any
) -> None:
    api.get(VOICE_QUERY, json={"code": "5003", "message": "server busy", "result": None})
    fired = record_signal(signals.task_outcome)
    old = timezone.now() - timedelta(hours=1)
    with topview(PROCESSING="manual"):
        for n in range(3):  # older notices that Topview never confirms
            deliver(notice_payload("VOICE_CLONE", task_id=f"spoof-{n}"))
        Notice.objects.update(received_at=old)
    with topview(VERIFY_WITH_QUERY=True):
        call_command("topview_process_pending", stdout=StringIO())  # each fails, once
    assert len(api.calls) == 3
    with topview(PROCESSING="manual"):
        deliver(notice_payload("VOICE_CLONE", task_id="real"))
    api.replace(responses.GET, VOICE_QUERY, json=query_answer("success", "real"))
    with topview(VERIFY_WITH_QUERY=True):
        call_command("topview_process_pending", "--limit", "1", stdout=StringIO())
    # The spoofed ones wait for their backoff: the fresh one is taken first.
    assert [call["notice"].task_id for call in fired.calls] == ["real"]
    assert len(api.calls) == 4


def test_f3_sweep_older_than_zero_means_zero() -> None:
    with topview(PROCESSING="manual"):
        deliver_notice(notice_payload("VOICE_CLONE"))
    # Its attempt started a second ago and its process died.
    Notice.objects.update(
        attempts=1, claim="dead", claimed_at=timezone.now() - timedelta(seconds=1)
    )
    restarted: list[int] = []
    with topview():
        assert sweeping.restart_stuck(older_than=timedelta(0), restart=restarted.append) == 1
        assert sweeping.restart_stuck(restart=restarted.append) == 0  # SWEEP_AFTER: not yet
    assert restarted == [Notice.objects.get().pk]


# --- 4. layered authentication, per account ----------------------------------------------


def post(path: str, uid: str, **extra: Any) -> Any:
    return Client().post(
        path,
        data=json.dumps(notice_payload("VOICE_CLONE")),
        content_type="application/json",
        headers={"Topview-Uid": uid},
        **extra,
    )


def token_url(token: str) -> str:
    return reverse("topview_callbacks:notice-with-token", args=[token])


PLAIN_URL = "/topview/notice/"


@pytest.mark.parametrize(
    ("uid", "path", "status"),
    [
        (UID_B, token_url(TOKEN_B), 200),  # the account's own token
        (UID_B, token_url(TOKEN_GLOBAL), 403),  # the flat tokens are the default account's
        (UID, token_url(TOKEN_GLOBAL), 200),
        (UID, token_url(TOKEN_B), 403),  # another account's token opens nothing
        (UID_B, PLAIN_URL, 403),
        (UID, PLAIN_URL, 403),
    ],
)
def test_f4_path_tokens_are_per_account(uid: str, path: str, status: int) -> None:
    accounts = {"brand-b": {"UID": UID_B, "API_KEY": "k", "NOTICE_TOKENS": [TOKEN_B]}}
    with topview(NOTICE_TOKENS=[TOKEN_GLOBAL], ACCOUNTS=accounts, PROCESSING="manual"):
        assert post(path, uid).status_code == status
    assert Notice.objects.count() == (1 if status == 200 else 0)


def test_f4_an_account_without_tokens_keeps_the_plain_url() -> None:
    accounts = {"brand-b": {"UID": UID_B, "API_KEY": "k", "NOTICE_TOKENS": [TOKEN_B]}}
    with topview(ACCOUNTS=accounts, PROCESSING="manual"):
        assert post(PLAIN_URL, UID).status_code == 200
        assert post(PLAIN_URL, UID_B).status_code == 403
        assert post(token_url(TOKEN_B), UID_B).status_code == 200


@pytest.mark.parametrize(
    ("settings", "remote", "forwarded", "status", "stored"),
    [
        ({"ALLOWED_IPS": ["203.0.113.0/24"]}, "203.0.113.9", None, 200, "203.0.113.9"),
        ({"ALLOWED_IPS": ["203.0.113.0/24"]}, "127.0.0.1", None, 403, None),
        # X-Forwarded-For is never trusted by default: anyone can write one.
        ({"ALLOWED_IPS": ["203.0.113.0/24"]}, "127.0.0.1", "203.0.113.9", 403, None),
        # Behind a trusted proxy, the right-most untrusted entry is the sender...
        (
            {"ALLOWED_IPS": ["203.0.113.0/24"], "TRUSTED_PROXIES": ["127.0.0.1", "10.0.0.0/8"]},
            "127.0.0.1",
            "198.51.100.1, 203.0.113.9, 10.1.2.3",
            200,
            "203.0.113.9",
        ),
        # ... so a client cannot prepend an allowed address to its own.
        (
            {"ALLOWED_IPS": ["203.0.113.0/24"], "TRUSTED_PROXIES": ["127.0.0.1"]},
            "127.0.0.1",
            "203.0.113.9, 198.51.100.1",
            403,
            None,
        ),
        # A malformed entry matches nothing: a typo never opens the list.
        ({"ALLOWED_IPS": ["203.0.113.0/33"]}, "203.0.113.9", None, 403, None),
        (
            {"ALLOWED_IPS": ["::ffff:0:0/96", "127.0.0.1"]},
            "::ffff:127.0.0.1",
            None,
            200,
            "127.0.0.1",
        ),
    ],
)
def test_f4_ip_allow_list_and_trusted_proxies(
    settings: dict[str, Any], remote: str, forwarded: str | None, status: int, stored: str | None
) -> None:
    extra: dict[str, Any] = {"REMOTE_ADDR": remote}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    with topview(PROCESSING="manual", **settings):
        response = post(PLAIN_URL, UID, **extra)
    assert response.status_code == status
    if stored:
        assert Notice.objects.get().remote_addr == stored
    else:
        assert not Notice.objects.exists()


def test_f4_an_account_may_have_its_own_allow_list() -> None:
    accounts = {"brand-b": {"UID": UID_B, "API_KEY": "k", "ALLOWED_IPS": ["198.51.100.0/24"]}}
    with topview(ACCOUNTS=accounts, PROCESSING="manual"):
        assert post(PLAIN_URL, UID, REMOTE_ADDR="127.0.0.1").status_code == 200
        assert post(PLAIN_URL, UID_B, REMOTE_ADDR="127.0.0.1").status_code == 403
        assert post(PLAIN_URL, UID_B, REMOTE_ADDR="198.51.100.7").status_code == 200


def check_ids(config: dict[str, Any], **settings: Any) -> list[str]:
    with override_settings(TOPVIEW_CALLBACKS=config, **settings):
        return [m.id for m in run_checks(tags=[Tags.security]) if m.id]


BARE = {"UID": "uid-1", "API_KEY": "k", "NOTICE_URL": "https://example.com/topview/notice/"}


def test_f4_w030_warns_when_only_the_uid_protects_the_endpoint() -> None:
    assert "topview_callbacks.W030" in check_ids(BARE, DEBUG=False)
    assert "topview_callbacks.W030" not in check_ids(BARE, DEBUG=True)
    with_ips = {**BARE, "ALLOWED_IPS": ["203.0.113.0/24"]}
    assert "topview_callbacks.W030" not in check_ids(with_ips, DEBUG=False)
    token = "t" * 24
    with_token = {**BARE, "NOTICE_TOKENS": [token], "NOTICE_URL": f"{BARE['NOTICE_URL']}{token}/"}
    assert "topview_callbacks.W030" not in check_ids(with_token, DEBUG=False)
    # One account left with only its UID is named: the flat token is the default account's.
    other = {**with_token, "ACCOUNTS": {"b": {"UID": "uid-b", "API_KEY": "k"}}}
    assert "topview_callbacks.W030" in check_ids(other, DEBUG=False)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({**BARE, "ALLOWED_IPS": ["not-an-address"]}, "topview_callbacks.E030"),
        ({**BARE, "ALLOWED_IPS": "203.0.113.0/24"}, "topview_callbacks.E030"),
        ({**BARE, "TRUSTED_PROXIES": ["10.0.0.0/33"]}, "topview_callbacks.E030"),
        ({**BARE, "ACCOUNTS": {"b": {"UID": "u", "ALLOWED_IPS": ["x"]}}}, "topview_callbacks.E030"),
        (
            {**BARE, "ACCOUNTS": {"b": {"UID": "u", "NOTICE_TOKENS": ["short"]}}},
            "topview_callbacks.E005",
        ),
        ({**BARE, "MEDIA_PREVIEW_HOSTS": "cdn.example.com"}, "topview_callbacks.E031"),
    ],
)
def test_f4_malformed_security_settings_are_errors(config: dict[str, Any], expected: str) -> None:
    assert expected in check_ids(config)


# --- 5. headers: see tests/test_views.py::test_secret_headers_are_not_stored ------------


def test_f5_view_only_staff_never_see_the_uid_in_stored_headers(admin_client: Client) -> None:
    with topview(PROCESSING="manual"):
        deliver_notice(notice_payload("VOICE_CLONE"), client=Client())
    notice = Notice.objects.get()
    html = admin_client.get(
        reverse("admin:topview_callbacks_notice_change", args=[notice.pk])
    ).content.decode()
    assert UID not in html
    assert "tes…" in html


# --- 6. no secret in any log line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        ("a-wrong-guess-0123456789", json.dumps(notice_payload()), 403),
        (TOKEN_GLOBAL, "not json", 400),
    ],
)
def test_f6_the_path_token_never_reaches_a_log_line(
    caplog: Any, token: str, body: str, status: int
) -> None:
    with topview(NOTICE_TOKENS=[TOKEN_GLOBAL]), caplog.at_level(logging.DEBUG):
        response = Client().post(
            token_url(token),
            data=body,
            content_type="application/json",
            headers={"Topview-Uid": UID},
        )
    assert response.status_code == status
    lines = [record.getMessage() for record in caplog.records]
    assert lines and not any(token in line for line in lines), lines
    assert not [r for r in caplog.records if r.name == "django.request"]  # logged once, by us
    (line,) = [r.getMessage() for r in caplog.records if r.name == "topview_callbacks.rejections"]
    assert f"({status})" in line and "rejected" in line


def test_f6_the_log_filter_redacts_access_log_lines() -> None:
    redact = RedactNoticeTokens()
    with topview(NOTICE_TOKENS=[TOKEN_GLOBAL]):
        # runserver's access log (django.server): the request line is an argument.
        record = logging.LogRecord(
            "django.server",
            logging.INFO,
            __file__,
            1,
            '"%s" %s %s',
            (f"POST /topview/notice/{TOKEN_GLOBAL}/ HTTP/1.1", 200, 90),
            None,
        )
        assert redact.filter(record) is True
        assert record.getMessage() == '"POST /topview/notice/<token>/ HTTP/1.1" 200 90'
        # gunicorn's access log: a dict of atoms; and a guess that is no configured token.
        record = logging.LogRecord(
            "gunicorn.access",
            logging.INFO,
            __file__,
            1,
            "%(r)s %(s)s",
            ({"r": "POST /hooks/topview/notice/guessed-token/ HTTP/1.1", "s": "403"},),
            None,
        )
        redact.filter(record)
        assert record.getMessage() == "POST /hooks/topview/notice/<token>/ HTTP/1.1 403"


# --- 7. bounded nesting; the admin survives what was stored before -----------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("as_string", [False, True])
def test_f7_json_nested_deeper_than_64_levels_gets_400(as_string: bool) -> None:
    payload = notice_payload("VOICE_CLONE")
    result = nested(200)
    payload["result"] = json.dumps(result) if as_string else result
    with topview():
        response = deliver_notice(payload)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "400" and body["result"]["result"] == "fail"
    assert "nested deeper than 64" in body["message"]
    assert not Notice.objects.exists()


def test_f7_nesting_within_the_limit_is_accepted() -> None:
    payload = {**notice_payload("VOICE_CLONE"), "result": nested(62)}  # 63 deep in the body
    with topview(PROCESSING="manual"):
        assert deliver_notice(payload).status_code == 200


def test_f7_the_admin_shows_raw_text_when_pretty_printing_fails(admin_client: Client) -> None:
    # As the endpoint stored it before the limit: parsed fine, too deep to pretty-print in
    # a request. Written as text, since encoding it here would hit the recursion limit.
    raw = '{"result": ' + "[" * 900 + "]" * 900 + "}"
    notice = Notice.objects.create(
        uuid="deep", biz_type="VOICE_CLONE", task_id="t", status="success", raw_body=raw
    )
    with connection.cursor() as cursor:
        table = Notice._meta.db_table
        cursor.execute(f"UPDATE {table} SET result = %s", ['{"a": ' + "[" * 900 + "]" * 900 + "}"])
    response = admin_client.get(reverse("admin:topview_callbacks_notice_change", args=[notice.pk]))
    assert response.status_code == 200
    assert "[[[[[[[[" in response.content.decode()


# --- 8. the media preview fetches nothing on page load -----------------------------------


def test_f8_media_loads_on_click_only_and_obeys_media_preview_hosts(admin_client: Client) -> None:
    result = {
        "previewVideos": [
            {
                "videoUrl": "https://cdn.example.com/a.mp4",
                "coverUrl": "https://cdn.example.com/a.jpg",
            },
            {"videoUrl": "http://10.0.0.5/internal", "coverUrl": "https://evil.test/pixel.jpg"},
        ]
    }
    notice = Notice.objects.create(
        uuid="m", biz_type="M2V_PREVIEW", task_id="t", status="success", result=result
    )
    url = reverse("admin:topview_callbacks_notice_change", args=[notice.pk])
    with topview(MEDIA_PREVIEW_HOSTS=["example.com"]):
        html = admin_client.get(url).content.decode()
    assert 'preload="metadata"' not in html and 'preload="auto"' not in html
    assert '<video controls preload="none" src="https://cdn.example.com/a.mp4"' in html
    assert 'loading="lazy"' in html and "<details" in html  # images wait for a click
    for unlisted in ("http://10.0.0.5/internal", "https://evil.test/pixel.jpg"):
        assert f'src="{unlisted}"' not in html and f'href="{unlisted}"' not in html
        assert unlisted in html  # still shown, as text


# --- 9. a task polled forever; M2V_SCRIPT settled ----------------------------------------


def test_f9_a_polled_outcome_whose_uuid_is_stored_under_another_task_closes_the_task(
    api: Any, record_signal: Any
) -> None:
    fired = record_signal(signals.task_outcome)
    with topview(PROCESSING="manual"):
        deliver_notice(notice_payload("VOICE_CLONE", task_id="other", uuid="shared-uuid"))
    task = SubmittedTask.objects.create(
        biz_type="VOICE_CLONE",
        task_id="t-9",
        notice_uuid="shared-uuid",
        next_poll_at=timezone.now() - timedelta(minutes=1),
    )
    api.get(VOICE_QUERY, json=query_answer("success", "t-9"))
    with topview():
        call_command("topview_reconcile", stdout=StringIO())
        call_command("topview_reconcile", stdout=StringIO())
    task.refresh_from_db()
    assert task.status == TaskStatus.SUCCESS
    assert [call["notice"].task_id for call in fired.calls] == ["t-9"]
    assert len(api.calls) == 1  # closed: not polled again


def test_f9_m2v_script_is_refused_by_the_client_without_calling_topview(api: Any) -> None:
    with topview(), pytest.raises(TopviewError, match="M2V_PREVIEW"):
        TopviewClient().submit("M2V_SCRIPT", productLink="https://shop.test/p")
    with topview(), pytest.raises(CommandError):
        call_command("topview_submit", "M2V_SCRIPT", "productLink=x", stdout=StringIO())
    assert len(api.calls) == 0
    assert not SubmittedTask.objects.exists()


# --- 10. docs name only settings the app reads ------------------------------------------


def test_f10_docs_do_not_tell_users_to_export_variables_the_app_does_not_read() -> None:
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    for page in pages:
        for line in page.read_text().splitlines():
            assert not line.lstrip().startswith("export TOPVIEW_"), (page.name, line)


# --- 11. a redelivery restarts a notice left pending --------------------------------------


def test_f11_a_redelivery_of_a_pending_notice_processes_it(
    record_signal: Any, deliver: Any
) -> None:
    fired = record_signal(signals.task_outcome)
    stored = record_signal(signals.notice_stored)
    payload = notice_payload("VOICE_CLONE")
    with topview(PROCESSING="manual"):  # stands for "stored, then the process died"
        deliver(payload)
    assert Notice.objects.get().state == NoticeState.PENDING
    with topview():
        assert deliver(payload).status_code == 200
        assert deliver(payload).status_code == 200  # processed now: nothing more
    notice = Notice.objects.get()
    assert (notice.state, notice.attempts) == (NoticeState.PROCESSED, 1)
    assert len(fired.calls) == 1
    assert len(stored.calls) == 1  # notice_stored is about new rows only


@pytest.mark.parametrize(("seconds_ago", "restarted"), [(10, True), (0, False)])
def test_f11_a_redelivery_finishes_a_notice_whose_process_died_at_once(
    record_signal: Any, deliver: Any, seconds_ago: int, restarted: bool
) -> None:
    fired = record_signal(signals.task_outcome)
    payload = notice_payload("VOICE_CLONE")
    with topview(PROCESSING="manual"):
        deliver(payload)
    # An attempt started, then its process died (its row lock went with it). Only one
    # that has just started may still be about to lock the notice: that one is left alone.
    Notice.objects.update(
        attempts=1, claim="dead", claimed_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    with topview(SWEEP_AFTER=300):
        deliver(payload)
    assert len(fired.calls) == (1 if restarted else 0)
    notice = Notice.objects.get()
    assert notice.state == (NoticeState.PROCESSED if restarted else NoticeState.PENDING)
    assert notice.attempts == (2 if restarted else 1)


def test_f11_a_duplicate_still_costs_one_statement(django_assert_num_queries: Any) -> None:
    payload = notice_payload("VOICE_CLONE")
    with topview(PROCESSING="manual"):
        deliver_notice(payload)
        Notice.objects.update(state=NoticeState.PROCESSED)
        with django_assert_num_queries(1):
            assert deliver_notice(payload).status_code == 200
