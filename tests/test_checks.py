"""System checks: each id fires on the set-up it is about, and not on a good one."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from django.core.checks import Tags
from django.test import override_settings

from tests.support.checks import GOOD, TOKEN, ids, ours


def test_a_good_configuration_passes() -> None:
    assert ids(TOPVIEW_CALLBACKS=GOOD) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("not a dict", "topview_callbacks.E001"),
        ({**GOOD, "UID": ""}, "topview_callbacks.E002"),
        ({**GOOD, "ACCOUNTS": {"b": {"API_KEY": "k"}}}, "topview_callbacks.E013"),
        ({**GOOD, "ACCOUNTS": ["b"]}, "topview_callbacks.E003"),
        ({**GOOD, "PROCESSING": "threads"}, "topview_callbacks.E004"),
        ({**GOOD, "NOTICE_TOKENS": ["short"]}, "topview_callbacks.E005"),
        ({**GOOD, "NOTICE_TOKENS": "a-single-string-token"}, "topview_callbacks.E005"),
        ({**GOOD, "MAX_BODY_SIZE": 0}, "topview_callbacks.E006"),
        ({**GOOD, "REQUEST_TIMEOUT": "30"}, "topview_callbacks.E006"),
        ({**GOOD, "NOTICE_URL": "ftp://example.com/n"}, "topview_callbacks.E009"),
        ({**GOOD, "NOTICE_URL": "http://example.com/topview/notice/"}, "topview_callbacks.W001"),
        ({**GOOD, "UDI": "typo"}, "topview_callbacks.W002"),
        ({**GOOD, "NOTICE_URL": ""}, "topview_callbacks.W003"),
        ({**GOOD, "ACCOUNTS": {"b": {"UID": "uid-1", "API_KEY": "k"}}}, "topview_callbacks.W005"),
        ({**GOOD, "API_KEY": ""}, "topview_callbacks.W006"),
        ({**GOOD, "NOTICE_TOKENS": ["x" * 20]}, "topview_callbacks.W007"),
        ({**GOOD, "MAX_UNFINISHED": 0}, "topview_callbacks.E080"),
        ({**GOOD, "MAX_UNFINISHED": "10"}, "topview_callbacks.E080"),
        (
            {**GOOD, "ACCOUNTS": {"b": {"UID": "u-b", "API_KEY": "k", "MAX_UNFINISHED": -1}}},
            "topview_callbacks.E080",
        ),
    ],
)
def test_each_problem_has_its_check(config: Any, expected: str) -> None:
    assert expected in ids(TOPVIEW_CALLBACKS=config)


def test_http_notice_url_is_fine_while_debugging() -> None:
    config = {**GOOD, "NOTICE_URL": f"http://127.0.0.1:8000/topview/notice/{TOKEN}/"}
    assert ids(TOPVIEW_CALLBACKS=config, DEBUG=True) == []


def test_a_token_at_the_end_of_notice_url_satisfies_w007() -> None:
    token = "x" * 20
    config = {
        **GOOD,
        "NOTICE_TOKENS": [token],
        "NOTICE_URL": f"https://a.example/topview/notice/{token}/",
    }
    assert ids(TOPVIEW_CALLBACKS=config) == []


def test_error_messages_say_what_to_set() -> None:
    with override_settings(TOPVIEW_CALLBACKS={**GOOD, "UID": ""}):
        (message,) = [m for m in ours() if m.id == "topview_callbacks.E002"]
    assert "TOPVIEW_CALLBACKS['UID']" in message.hint


# --- checks that depend on the database and on Celery ------------------------------------


@pytest.fixture
def on_postgresql(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The default database as the checks see it: PostgreSQL with persistent connections."""
    from django.db import connection

    monkeypatch.setattr(connection, "vendor", "postgresql")
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    return connection


def test_e007_celery_processing_without_celery_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "celery" else find_spec(name)
    )
    assert "topview_callbacks.E007" in ids(TOPVIEW_CALLBACKS={**GOOD, "PROCESSING": "celery"})


def test_e008_a_database_without_insert_on_conflict_returning(on_postgresql: Any) -> None:
    on_postgresql.vendor = "mysql"
    assert "topview_callbacks.E008" in ids(TOPVIEW_CALLBACKS=GOOD)


def test_w004_a_new_postgresql_connection_per_notice(on_postgresql: Any) -> None:
    assert ids(TOPVIEW_CALLBACKS=GOOD) == []
    on_postgresql.settings_dict["CONN_MAX_AGE"] = 0
    assert ids(TOPVIEW_CALLBACKS=GOOD) == ["topview_callbacks.W004"]
    assert ids(TOPVIEW_CALLBACKS=GOOD, DEBUG=True) == []


def test_w022_celery_closing_the_connection_after_every_task(on_postgresql: Any) -> None:
    def w022(**settings: Any) -> bool:
        with override_settings(**settings):
            return "topview_callbacks.W022" in [m.id for m in ours()]

    celery = {**GOOD, "PROCESSING": "celery"}
    assert w022(TOPVIEW_CALLBACKS=celery)
    assert not w022(TOPVIEW_CALLBACKS=celery, CELERY_DB_REUSE_MAX=1000)
    assert not w022(TOPVIEW_CALLBACKS=GOOD)  # inline: no worker
    assert not w022(TOPVIEW_CALLBACKS=celery, DEBUG=True)
    on_postgresql.vendor = "sqlite"  # connections cost next to nothing
    assert not w022(TOPVIEW_CALLBACKS=celery)


def test_each_id_means_one_problem() -> None:
    """E003 is the ACCOUNTS shape only; an account without a UID is E013 (E003 before 0.2)."""
    assert ids(TOPVIEW_CALLBACKS={**GOOD, "ACCOUNTS": ["b"]}) == ["topview_callbacks.E003"]
    assert ids(TOPVIEW_CALLBACKS={**GOOD, "ACCOUNTS": {"b": {}}}) == ["topview_callbacks.E013"]


def test_a_settings_value_that_is_not_a_dict_is_reported_once() -> None:
    assert ids(TOPVIEW_CALLBACKS="not a dict") == ["topview_callbacks.E001"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({**GOOD, "NOTICE_URL": "http://example.com/topview/notice/"}, "topview_callbacks.W001"),
        ({**GOOD, "NOTICE_TOKENS": ["short"]}, "topview_callbacks.E005"),
    ],
)
def test_security_checks_are_tagged_security(config: Any, expected: str) -> None:
    """``manage.py check --tag security`` (and --deploy) reports them."""
    with override_settings(TOPVIEW_CALLBACKS=config):
        assert expected in [m.id for m in ours(tags=[Tags.security])]
        assert expected not in [m.id for m in ours(tags=[Tags.compatibility])]


# System checks of the polling settings ------------------------------------------------------


POLLING = {**GOOD, "POLL_AFTER": {"default": 600, "VOICE_CLONE": 60}, "TASK_MAX_AGE": 86400}


def polling_check_ids(**overrides: object) -> list[str]:
    return ids(TOPVIEW_CALLBACKS={**POLLING, **overrides})


def test_good_polling_settings_pass_the_checks() -> None:
    assert polling_check_ids() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"POLL_AFTER": -1}, "topview_callbacks.E010"),
        ({"POLL_AFTER": {"default": "soon"}}, "topview_callbacks.E010"),
        ({"POLL_AFTER": {"M2V_PREVEIW": 60}}, "topview_callbacks.W011"),
        ({"POLL_MAX_INTERVAL": 0}, "topview_callbacks.E011"),
        ({"TASK_MAX_AGE": "2d"}, "topview_callbacks.E011"),
        ({"POLL_BACKOFF": 0.5}, "topview_callbacks.E012"),
        ({"TASK_MAX_AGE": 3600}, "topview_callbacks.W010"),
    ],
)
def test_bad_polling_settings_are_reported(overrides: dict[str, Any], expected: str) -> None:
    assert polling_check_ids(**overrides) == [expected]


# --- processing, retries, the sweep and pruning ---------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"MAX_ATTEMPTS": 0}, "topview_callbacks.E020"),
        ({"RETRY_BACKOFF": -1}, "topview_callbacks.E020"),
        ({"SWEEP_AFTER": "5m"}, "topview_callbacks.E020"),
        ({"PRUNE_AFTER_DAYS": 30, "PRUNE_FAILED_AFTER_DAYS": 7}, "topview_callbacks.W020"),
    ],
)
def test_processing_checks(values: dict[str, Any], expected: str) -> None:
    assert expected in ids(TOPVIEW_CALLBACKS={**GOOD, **values})


def test_default_processing_settings_pass_the_checks() -> None:
    found = set(ids(TOPVIEW_CALLBACKS=GOOD))
    assert not {"topview_callbacks.E020", "topview_callbacks.W020"} & found


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"HEALTH": []}, "topview_callbacks.E050"),
        ({"HEALTH": {"FAILED_24H_WARNING": -1}}, "topview_callbacks.E050"),
        ({"HEALTH": {"NO_SUCH_THRESHOLD": 1}}, "topview_callbacks.E050"),
    ],
)
def test_observability_settings_are_checked(extra: dict[str, Any], expected: str) -> None:
    assert ids(TOPVIEW_CALLBACKS={**GOOD, **extra}) == [expected]


def test_metrics_without_prometheus_client_is_e051(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prometheus_client" else real(name, *a),
    )
    assert ids(TOPVIEW_CALLBACKS={**GOOD, "METRICS": True}) == ["topview_callbacks.E051"]


def test_a_short_metrics_token_is_a_security_error() -> None:
    with override_settings(TOPVIEW_CALLBACKS={**GOOD, "METRICS_TOKEN": "short"}):
        assert [m.id for m in ours(tags=[Tags.security])] == ["topview_callbacks.E052"]


def test_a_missing_multiprocess_directory_is_w050(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/prometheus")
    assert ids(TOPVIEW_CALLBACKS={**GOOD, "METRICS": True}) == ["topview_callbacks.W050"]


# --- PROCESSING="tasks": Django's Tasks framework --------------------------------------------

TASKS_MODE = {**GOOD, "PROCESSING": "tasks"}
_FRAMEWORK = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
needs_tasks = pytest.mark.skipif(
    importlib.util.find_spec(_FRAMEWORK) is None, reason="needs django.tasks or django-tasks"
)


def backend(name: str, **params: Any) -> dict[str, Any]:
    return {"BACKEND": f"{_FRAMEWORK}.backends.{name}", **params}


def tasks_ids(**settings: Any) -> list[str]:
    """Only this check: the framework's own check raises on a backend it can't load."""
    from topview_callbacks.checks import check_tasks_framework

    with override_settings(**settings):
        return [message.id for message in check_tasks_framework()]  # type: ignore[misc]


class NoDeferBackend:
    """Stands for a backend with workers that can't run a task later (no ``run_after``)."""

    supports_defer = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        self.alias, self.queues = alias, set(params.get("QUEUES", ["default"]))

    def validate_task(self, task: Any) -> None:
        pass


@needs_tasks
def test_tasks_mode_with_a_backend_that_has_workers_passes() -> None:
    pytest.importorskip("django_tasks_db")
    assert ids(TOPVIEW_CALLBACKS={**TASKS_MODE, "TASKS_BACKEND": "database"}) == []


@needs_tasks
@pytest.mark.parametrize(
    ("values", "tasks", "expected"),
    [
        ({"TASKS_QUEUE": ""}, None, "topview_callbacks.E061"),
        ({"TASKS_BACKEND": 3}, None, "topview_callbacks.E061"),
        ({"TASKS_BACKEND": "workers"}, None, "topview_callbacks.E062"),
        ({}, {"default": {"BACKEND": "no.such.Backend"}}, "topview_callbacks.E062"),
        ({"TASKS_QUEUE": "topview"}, None, "topview_callbacks.E063"),
        ({}, {"default": backend("immediate.ImmediateBackend")}, "topview_callbacks.W060"),
        ({}, {"default": backend("dummy.DummyBackend")}, "topview_callbacks.W061"),
        (
            {},
            {"default": {"BACKEND": "tests.test_checks.NoDeferBackend"}},
            "topview_callbacks.W062",
        ),
    ],
)
def test_tasks_framework_checks(
    values: dict[str, Any], tasks: dict[str, Any] | None, expected: str
) -> None:
    settings = {"TASKS": tasks} if tasks is not None else {}
    assert tasks_ids(TOPVIEW_CALLBACKS={**TASKS_MODE, **values}, **settings) == [expected]


@needs_tasks
def test_w060_the_immediate_backend_is_fine_while_debugging() -> None:
    assert ids(TOPVIEW_CALLBACKS=TASKS_MODE) == ["topview_callbacks.W060"]
    assert ids(TOPVIEW_CALLBACKS=TASKS_MODE, DEBUG=True) == []
    assert ids(TOPVIEW_CALLBACKS=GOOD) == []  # inline: the Tasks framework is not used


def test_e060_tasks_processing_without_the_tasks_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    hidden = ("django.tasks", "django_tasks")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in hidden else find_spec(name)
    )
    assert ids(TOPVIEW_CALLBACKS=TASKS_MODE) == ["topview_callbacks.E060"]
