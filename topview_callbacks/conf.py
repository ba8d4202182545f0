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
ARCHIVE_KINDS = ("video", "image", "audio")

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
    # Secret path tokens; when non-empty, notices must arrive at notice/<token>/. Each account
    # may have its own too (ACCOUNTS[name]["NOTICE_TOKENS"]); it accepts these and its own.
    "NOTICE_TOKENS": [],
    # Addresses or CIDR networks allowed to deliver notices; [] allows any address. Each
    # account may add its own (ACCOUNTS[name]["ALLOWED_IPS"]). See TRUSTED_PROXIES.
    "ALLOWED_IPS": [],
    # Addresses or CIDR networks of your own reverse proxies. X-Forwarded-For is read only
    # when the direct peer is one of them, and then its right-most address that is not a
    # trusted proxy is the sender. [] (the default): X-Forwarded-For is never trusted.
    "TRUSTED_PROXIES": [],
    # Hosts whose media the admin may preview (on a click; "example.com" also covers its
    # subdomains). [] previews any http(s) URL on a click; other URLs are shown as text.
    "MEDIA_PREVIEW_HOSTS": [],
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
    # Celery: notices one "drain" task processes (claimed one at a time, oldest pending
    # first, FOR UPDATE SKIP LOCKED on PostgreSQL). 1: one task per notice. Above 1, the web
    # side publishes at most one drain message per BATCH_WINDOW and process (plus one due at
    # the window's end), so Celery's per-message cost is shared by the notices of a window.
    "BATCH_SIZE": 1,
    # Celery with BATCH_SIZE > 1: seconds a web process waits before it publishes another
    # drain message; a notice waits at most about this long for its drain to start.
    "BATCH_WINDOW": 0.05,
    # PostgreSQL: commit the final "processed" mark with synchronous_commit=off (one WAL
    # flush less per notice). A database crash may then lose the marks of the last moments:
    # those notices are found by the sweep and their receivers run again. Off: always durable.
    "ASYNC_PROCESSED_MARK": False,
    # PostgreSQL: run the pipeline's few statements as server-side prepared statements
    # (parsed and planned once per connection). Off by default: connection poolers in
    # transaction mode (PgBouncer before 1.21, without max_prepared_statements) break them.
    "PREPARED_STATEMENTS": False,
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
    # Days after which the per-minute counts of rejected deliveries are pruned.
    "PRUNE_REJECTIONS_AFTER_DAYS": 30,
    # Thresholds of `manage.py topview_health` (and its health-check plugin, the dashboard and
    # the metrics' gauges): any of HEALTH_DEFAULTS' keys; the others keep their default.
    "HEALTH": {},
    # True: count the pipeline's events for Prometheus (needs the `metrics` extra).
    "METRICS": False,
    # A bearer token that may read the metrics URL (staff with view permission always may).
    "METRICS_TOKEN": "",
    # Seconds the admin dashboard keeps the remaining Topview credit before asking again.
    "CREDIT_CACHE_SECONDS": 300,
    # Archiving (docs/archiving.md): copy each successful task's output media into your own
    # storage, off the request path, before Topview's URLs expire (7 days; presigned S3
    # URLs: 24 h).
    "ARCHIVE_MEDIA": False,
    # The alias in STORAGES the files are written to (S3, GCS... through django-storages).
    "ARCHIVE_STORAGE": "default",
    # Where a file goes in that storage; {biz_type}, {task_id}, {kind} and {index} are
    # required (they make the name unique), {account} and {ext} (".mp4"...) are optional.
    "ARCHIVE_PATH": "topview/{account}/{biz_type}/{task_id}/{kind}-{index}{ext}",
    # Hosts files are fetched from: exact names, or "*.example.com" for its subdomains.
    # Topview's results name its S3 bucket (aigc.s3.amazonaws.com) and, with
    # needCloudFrontUrl=true, CloudFront distributions.
    "ARCHIVE_HOSTS": ["aigc.s3.amazonaws.com", "*.cloudfront.net", "*.topview.ai"],
    # A file larger than this many bytes is not stored (state "refused").
    "ARCHIVE_MAX_BYTES": 1024 * 1024 * 1024,
    # Which kinds of output are archived.
    "ARCHIVE_KINDS": list(ARCHIVE_KINDS),
    # Seconds to connect, and the longest silence while reading, before a download is retried.
    "ARCHIVE_TIMEOUT": 30.0,
    # Tests and the demo only: fetch http:// URLs, and hosts that resolve to loopback or
    # private addresses. Cloud metadata addresses are refused even then.
    "ARCHIVE_ALLOW_HTTP": False,
    "ARCHIVE_ALLOW_PRIVATE": False,
}

#: The health thresholds (``HEALTH`` overrides any of them); docs/operations.md explains each.
HEALTH_DEFAULTS: dict[str, float] = {
    # The oldest pending or processing notice, in multiples of SWEEP_AFTER: beyond it the
    # sweep is not running (warning) or cannot keep up (critical).
    "STUCK_WARNING_FACTOR": 2.0,
    "STUCK_CRITICAL_FACTOR": 6.0,
    # Notices whose receivers failed, received in the last 24 hours.
    "FAILED_24H_WARNING": 1,
    "FAILED_24H_CRITICAL": 50,
    # Open tasks whose poll time passed more than OVERDUE_GRACE_SECONDS ago (no reconcile).
    "OVERDUE_GRACE_SECONDS": 900,
    "OVERDUE_WARNING": 1,
    "OVERDUE_CRITICAL": 100,
    # Hours without any notice while tasks are open (callbacks are not reaching us).
    "SILENCE_WARNING_HOURS": 6,
    "SILENCE_CRITICAL_HOURS": 24,
    # Rejected deliveries in the last hour, for any reason ...
    "REJECTIONS_WARNING": 10,
    # ... and those refused for a wrong UID or path token: a settings mistake that loses results.
    "AUTH_REJECTIONS_CRITICAL": 1,
}


@dataclass(frozen=True)
class Account:
    """One Topview account: the credentials that sign our calls and identify its notices."""

    name: str
    uid: str
    api_key: str
    notice_url: str
    #: Path tokens this account's notices may use: the global NOTICE_TOKENS and its own.
    notice_tokens: tuple[str, ...] = ()
    #: Addresses or networks it may deliver from: the global ALLOWED_IPS and its own.
    allowed_ips: tuple[str, ...] = ()


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
        """The global NOTICE_TOKENS (``Account.notice_tokens`` adds an account's own)."""
        return _strings(self._get("NOTICE_TOKENS"))

    @property
    def all_notice_tokens(self) -> list[str]:
        """Every path token of every account, the global ones included (for redaction)."""
        found = dict.fromkeys(self.notice_tokens)
        for account in self.accounts.values():
            found.update(dict.fromkeys(account.notice_tokens))
        return list(found)

    @property
    def allowed_ips(self) -> list[str]:
        """The global ALLOWED_IPS (``Account.allowed_ips`` adds an account's own)."""
        return _strings(self._get("ALLOWED_IPS"))

    @property
    def trusted_proxies(self) -> list[str]:
        return _strings(self._get("TRUSTED_PROXIES"))

    @property
    def media_preview_hosts(self) -> list[str]:
        return [host.lower().strip(".") for host in _strings(self._get("MEDIA_PREVIEW_HOSTS"))]

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
    def batch_size(self) -> int:
        return max(int(self._get("BATCH_SIZE")), 1)

    @property
    def batch_window(self) -> float:
        return float(self._get("BATCH_WINDOW"))

    @property
    def async_processed_mark(self) -> bool:
        return bool(self._get("ASYNC_PROCESSED_MARK"))

    @property
    def prepared_statements(self) -> bool:
        return bool(self._get("PREPARED_STATEMENTS"))

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
    def prune_rejections_after_days(self) -> int:
        return int(self._get("PRUNE_REJECTIONS_AFTER_DAYS"))

    @property
    def health(self) -> dict[str, float]:
        """``HEALTH_DEFAULTS`` updated with the ``HEALTH`` setting's known keys."""
        value = self._get("HEALTH")
        given = value if isinstance(value, dict) else {}
        return {key: float(given.get(key, default)) for key, default in HEALTH_DEFAULTS.items()}

    @property
    def metrics(self) -> bool:
        return bool(self._get("METRICS"))

    @property
    def metrics_token(self) -> str:
        return str(self._get("METRICS_TOKEN") or "")

    @property
    def credit_cache_seconds(self) -> float:
        return float(self._get("CREDIT_CACHE_SECONDS"))

    @property
    def archive_media(self) -> bool:
        return bool(self._get("ARCHIVE_MEDIA"))

    @property
    def archive_storage(self) -> str:
        return str(self._get("ARCHIVE_STORAGE"))

    @property
    def archive_path(self) -> str:
        return str(self._get("ARCHIVE_PATH"))

    @property
    def archive_hosts(self) -> list[str]:
        return [str(host).lower() for host in self._get("ARCHIVE_HOSTS") or []]

    @property
    def archive_max_bytes(self) -> int:
        return int(self._get("ARCHIVE_MAX_BYTES"))

    @property
    def archive_kinds(self) -> list[str]:
        return [str(kind) for kind in self._get("ARCHIVE_KINDS") or []]

    @property
    def archive_timeout(self) -> float:
        return float(self._get("ARCHIVE_TIMEOUT"))

    @property
    def archive_allow_http(self) -> bool:
        return bool(self._get("ARCHIVE_ALLOW_HTTP"))

    @property
    def archive_allow_private(self) -> bool:
        return bool(self._get("ARCHIVE_ALLOW_PRIVATE"))

    @property
    def accounts(self) -> dict[str, Account]:
        """All configured accounts by name; the flat keys make the ``default`` one."""
        found: dict[str, Account] = {}
        tokens, ips = tuple(self.notice_tokens), tuple(self.allowed_ips)
        if self.uid:
            found[DEFAULT_ACCOUNT] = Account(
                DEFAULT_ACCOUNT, self.uid, self.api_key, self.notice_url, tokens, ips
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
                notice_tokens=(*tokens, *_strings(values.get("NOTICE_TOKENS"))),
                allowed_ips=(*ips, *_strings(values.get("ALLOWED_IPS"))),
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


def _strings(value: Any) -> list[str]:
    # A malformed value (a bare string, a number) is reported by a system check (E005,
    # E030). Here it fails closed: it becomes one entry that matches nothing real, never an
    # empty list (which would switch the protection off) nor a list of characters.
    if not value:
        return []
    if not isinstance(value, (list, tuple)):
        return [str(value)]
    return [str(item) for item in value]


topview_settings = TopviewSettings()
