"""The ``TOPVIEW_CALLBACKS`` settings dict, read on every access.

Every property re-reads ``django.conf.settings`` so that ``override_settings`` works
without any cache to reset. Nothing else in the package reads the dict directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings

from topview_callbacks.exceptions import TopviewConfigurationError

SETTINGS_NAME = "TOPVIEW_CALLBACKS"
DEFAULT_ACCOUNT = "default"
PROCESSING_MODES = ("inline", "celery", "tasks", "manual")

#: Every key, its default and what it means (the README's settings table mirrors this).
DEFAULTS: dict[str, Any] = {
    # Credentials of the default account ("API Settings" in the Topview web app).
    "UID": "",
    "API_KEY": "",
    # Public URL of this site's notice endpoint; added to every submit as noticeUrl.
    "NOTICE_URL": "",
    "API_BASE_URL": "https://api.topview.ai",
    # More accounts: {"name": {"UID": ..., "API_KEY": ..., "NOTICE_URL": ...}}.
    "ACCOUNTS": {},
    # Secret path tokens; when non-empty, notices must arrive at notice/<token>/.
    "NOTICE_TOKENS": [],
    # Request bodies larger than this many bytes are refused with 413.
    "MAX_BODY_SIZE": 2 * 1024 * 1024,
    # "inline": process after commit in the request; "celery": enqueue a Celery task;
    # "tasks": enqueue a task of Django's Tasks framework (django.tasks, or the django-tasks
    # backport); "manual": only store (run `manage.py topview_process_pending` or a sweep).
    "PROCESSING": "inline",
    # "tasks": the alias in the project's TASKS setting whose backend runs our tasks ...
    "TASKS_BACKEND": "default",
    # ... and the queue they go to (the backend's QUEUES must list it, when it lists any).
    "TASKS_QUEUE": "default",
    # Seconds before a call to Topview's API gives up.
    "REQUEST_TIMEOUT": 30.0,
    # Celery and Tasks: attempts at running a notice's receivers (the first one included) before the
    # notice stays "failed" (replay it from the admin or `topview_reprocess`).
    "MAX_ATTEMPTS": 5,
    # Celery and Tasks: seconds before the first retry after a receiver raised; doubled on each
    # further attempt, capped at RETRY_BACKOFF_MAX.
    "RETRY_BACKOFF": 10.0,
    "RETRY_BACKOFF_MAX": 600.0,
    # Celery and Tasks: wait a random 50-100% of the backoff, so failures don't retry in lockstep.
    "RETRY_JITTER": True,
    # Seconds after which a notice still pending (the broker was down) or still processing
    # (its worker died) counts as stuck: the sweep restarts it. Keep it above the longest
    # time your receivers may take, or a slow receiver could be run twice.
    "SWEEP_AFTER": 300.0,
    # Days after which processed, duplicate and ignored notices are pruned.
    "PRUNE_AFTER_DAYS": 90,
    # Days after which failed notices are pruned (kept longer: someone may replay them).
    "PRUNE_FAILED_AFTER_DAYS": 365,
    # Polling fallback (polling.reconcile): seconds after submit before a task whose
    # notice has not come is queried, per bizType; "default" covers the others.
    "POLL_AFTER": {"default": 15 * 60},
    # After each poll that finds the task unfinished, the wait grows by this factor
    # (1 = a fixed interval) ...
    "POLL_BACKOFF": 2.0,
    # ... up to this many seconds between two polls of one task.
    "POLL_MAX_INTERVAL": 60 * 60,
    # Seconds after submit when a task still without outcome is marked expired (signal
    # task_expired). Off-peak tasks can take 24 h, so the default leaves a margin.
    "TASK_MAX_AGE": 48 * 60 * 60,
    # At most this many tasks are queried by one reconcile pass.
    "RECONCILE_BATCH_SIZE": 200,
    # True: before firing the signals for a callback, confirm it with the query endpoint and
    # keep Topview's answer (callbacks are unsigned). One API call per callback.
    "VERIFY_WITH_QUERY": False,
}


@dataclass(frozen=True)
class Account:
    """One Topview account: the credentials that sign our calls and identify its notices."""

    name: str
    uid: str
    api_key: str
    notice_url: str


class TopviewSettings:
    """Typed, always-fresh view of ``settings.TOPVIEW_CALLBACKS``."""

    @property
    def raw(self) -> dict[str, Any]:
        value = getattr(django_settings, SETTINGS_NAME, {})
        return value if isinstance(value, dict) else {}

    def _get(self, key: str) -> Any:
        return self.raw.get(key, DEFAULTS[key])

    @property
    def uid(self) -> str:
        return str(self._get("UID") or "")

    @property
    def api_key(self) -> str:
        return str(self._get("API_KEY") or "")

    @property
    def notice_url(self) -> str:
        return str(self._get("NOTICE_URL") or "")

    @property
    def api_base_url(self) -> str:
        return str(self._get("API_BASE_URL") or DEFAULTS["API_BASE_URL"]).rstrip("/")

    @property
    def notice_tokens(self) -> list[str]:
        tokens = self._get("NOTICE_TOKENS") or []
        return [str(token) for token in tokens]

    @property
    def max_body_size(self) -> int:
        return int(self._get("MAX_BODY_SIZE"))

    @property
    def processing(self) -> str:
        return str(self._get("PROCESSING"))

    @property
    def tasks_backend(self) -> str:
        """The ``TASKS`` alias ``PROCESSING="tasks"`` enqueues to."""
        return str(self._get("TASKS_BACKEND"))

    @property
    def tasks_queue(self) -> str:
        """The queue name ``PROCESSING="tasks"`` enqueues to."""
        return str(self._get("TASKS_QUEUE"))

    @property
    def request_timeout(self) -> float:
        return float(self._get("REQUEST_TIMEOUT"))

    @property
    def max_attempts(self) -> int:
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def retry_backoff(self) -> float:
        return float(self._get("RETRY_BACKOFF"))

    @property
    def retry_backoff_max(self) -> float:
        return float(self._get("RETRY_BACKOFF_MAX"))

    @property
    def retry_jitter(self) -> bool:
        return bool(self._get("RETRY_JITTER"))

    @property
    def sweep_after(self) -> float:
        """Seconds; see ``SWEEP_AFTER``."""
        return float(self._get("SWEEP_AFTER"))

    @property
    def prune_after_days(self) -> int:
        return int(self._get("PRUNE_AFTER_DAYS"))

    @property
    def prune_failed_after_days(self) -> int:
        return int(self._get("PRUNE_FAILED_AFTER_DAYS"))

    def poll_after(self, biz_type: str) -> timedelta:
        """How long after submit a ``biz_type`` task waits for its notice before a poll."""
        value = self._get("POLL_AFTER")
        if isinstance(value, dict):
            value = value.get(biz_type, value.get("default", DEFAULTS["POLL_AFTER"]["default"]))
        return timedelta(seconds=float(value))

    @property
    def poll_backoff(self) -> float:
        return float(self._get("POLL_BACKOFF"))

    @property
    def poll_max_interval(self) -> timedelta:
        return timedelta(seconds=float(self._get("POLL_MAX_INTERVAL")))

    @property
    def task_max_age(self) -> timedelta:
        return timedelta(seconds=float(self._get("TASK_MAX_AGE")))

    @property
    def reconcile_batch_size(self) -> int:
        return int(self._get("RECONCILE_BATCH_SIZE"))

    @property
    def verify_with_query(self) -> bool:
        return bool(self._get("VERIFY_WITH_QUERY"))

    @property
    def accounts(self) -> dict[str, Account]:
        """All configured accounts by name; the flat keys make the ``default`` one."""
        found: dict[str, Account] = {}
        if self.uid:
            found[DEFAULT_ACCOUNT] = Account(
                DEFAULT_ACCOUNT, self.uid, self.api_key, self.notice_url
            )
        extra = self._get("ACCOUNTS")
        for name, values in (extra if isinstance(extra, dict) else {}).items():
            if not isinstance(values, dict):
                continue
            found[str(name)] = Account(
                name=str(name),
                uid=str(values.get("UID") or ""),
                api_key=str(values.get("API_KEY") or ""),
                notice_url=str(values.get("NOTICE_URL") or self.notice_url),
            )
        return found

    def account(self, name: str | None = None) -> Account:
        """The named account (the default one when ``name`` is None), or a clear error."""
        name = name or DEFAULT_ACCOUNT
        try:
            return self.accounts[name]
        except KeyError:
            if name == DEFAULT_ACCOUNT:
                message = (
                    f"Set {SETTINGS_NAME}['UID'] (and 'API_KEY') to your Topview credentials, "
                    "from 'API Settings' in the Topview web app."
                )
            else:
                message = (
                    f"Add {name!r} to {SETTINGS_NAME}['ACCOUNTS'] with its 'UID' and 'API_KEY'."
                )
            raise TopviewConfigurationError(message) from None


topview_settings = TopviewSettings()
