"""Is the pipeline healthy? Plain functions behind ``topview_health``, the health-check plugin,
the admin dashboard and the metrics' gauges.

``measure`` reads what matters in a few indexed queries (no scan of the notice table),
from ``READ_DATABASE`` when one is set;
``evaluate`` turns the measurements into findings, each ok, warning or critical, against the
``HEALTH`` thresholds; ``check`` does both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from django.db.models import Max, Min, Q, Sum
from django.utils import timezone

from topview_callbacks import credit
from topview_callbacks.conf import topview_settings
from topview_callbacks.estimates import bounded_count
from topview_callbacks.models import (
    OPEN_TASK_STATUSES,
    Notice,
    NoticeState,
    RejectedDelivery,
    SubmittedTask,
    TaskStatus,
)
from topview_callbacks.rejections import MISCONFIGURATION_REASONS, STRAY_REASONS

#: Up to this many failed notices are counted exactly (an index-only count of at most this
#: many entries); above it, ``failed`` is PostgreSQL's estimate.
FAILED_EXACT_LIMIT = 10_000


class Level(IntEnum):
    """A finding's severity; its value is the exit code of ``topview_health``."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True)
class Finding:
    """One probe's verdict: ``name`` is stable (for alerts), ``summary`` is for people."""

    name: str
    level: Level
    summary: str
    value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level.name.lower(),
            "summary": self.summary,
            "value": self.value,
        }


@dataclass(frozen=True)
class Measurements:
    """What the probes (and the gauges) look at, read at ``now``."""

    now: datetime
    pending: int
    retrying: int  # failed notices whose retry is scheduled
    failed: int  # exact up to FAILED_EXACT_LIMIT, then PostgreSQL's estimate
    failed_24h: int
    oldest_waiting_at: datetime | None  # since when the longest-waiting due notice is due
    overdue_tasks: int
    has_open_tasks: bool  # tasks still waiting for their outcome
    last_notice_at: datetime | None
    rejections_1h: int
    misconfigured_1h: int  # of rejections.MISCONFIGURATION_REASONS
    rejection_reasons_1h: dict[str, int] = field(default_factory=dict)
    uncertain_submissions: int = 0  # sent, answer lost: waiting for a person (sending)
    # Each account's remaining credit (None: unknown), read only when a CREDIT_ threshold
    # is set.
    credits: dict[str, float | None] = field(default_factory=dict)
    failed_estimated: bool = False  # ``failed`` is PostgreSQL's estimate

    @property
    def oldest_waiting_seconds(self) -> float:
        if self.oldest_waiting_at is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_waiting_at).total_seconds())


Probe = Callable[[Measurements, dict[str, float]], Finding]


def measure(now: datetime | None = None) -> Measurements:
    """Read the pipeline's state: about ten small queries, each on an index."""
    now = now or timezone.now()
    grace = timedelta(seconds=topview_settings.health["OVERDUE_GRACE_SECONDS"])
    db = topview_settings.read_database  # None: where the router reads
    by_state = Notice.objects.using(db).order_by()
    pending = by_state.filter(state=NoticeState.PENDING)
    failed = by_state.filter(state=NoticeState.FAILED)
    # One branch per state, so that PostgreSQL reads them from the due notices' index.
    retrying = by_state.filter(
        Q(state=NoticeState.PENDING, next_attempt_at__isnull=False)
        | Q(state=NoticeState.FAILED, next_attempt_at__isnull=False)
    )
    oldest = [
        pending.filter(next_attempt_at__isnull=True).aggregate(at=Min("received_at"))["at"],
        retrying.filter(next_attempt_at__lte=now).aggregate(at=Min("next_attempt_at"))["at"],
    ]
    open_tasks = SubmittedTask.objects.using(db).order_by().filter(status__in=OPEN_TASK_STATUSES)
    reasons = _rejections_by_reason(now - timedelta(hours=1), db)
    # Failed notices are kept a year: counted exactly while few, estimated past that.
    failed_count, failed_estimated = bounded_count(failed, FAILED_EXACT_LIMIT)
    return Measurements(
        now=now,
        pending=pending.count(),
        retrying=retrying.filter(state=NoticeState.FAILED).count(),
        failed=failed_count,
        failed_estimated=failed_estimated,
        failed_24h=failed.filter(received_at__gte=now - timedelta(hours=24)).count(),
        oldest_waiting_at=min((at for at in oldest if at is not None), default=None),
        overdue_tasks=open_tasks.filter(next_poll_at__lt=now - grace).count(),
        has_open_tasks=open_tasks.exists(),
        last_notice_at=by_state.aggregate(at=Max("received_at"))["at"],
        rejections_1h=sum(reasons.values()),
        misconfigured_1h=sum(reasons.get(reason, 0) for reason in MISCONFIGURATION_REASONS),
        rejection_reasons_1h=reasons,
        uncertain_submissions=SubmittedTask.objects.using(db)
        .order_by()
        .filter(status=TaskStatus.UNCERTAIN)
        .count(),
        credits=_credits(),
    )


def _credits() -> dict[str, float | None]:
    limits = topview_settings.health
    if limits["CREDIT_WARNING"] <= 0 and limits["CREDIT_CRITICAL"] <= 0:
        return {}
    return {row.account: row.remaining for row in credit.credits()}


def _rejections_by_reason(since: datetime, db: str | None) -> dict[str, int]:
    rows = (
        RejectedDelivery.objects.using(db)
        .filter(minute__gte=since)
        .order_by()
        .values("reason")
        .annotate(total=Sum("count"))
    )
    return {row["reason"]: int(row["total"]) for row in rows}


def _graded(value: float, warning: float, critical: float) -> Level:
    if value >= critical:
        return Level.CRITICAL
    if value >= warning:
        return Level.WARNING
    return Level.OK


def _sentence(text: str) -> str:
    return text if text.endswith("?") else text + "."


def probe_stuck(m: Measurements, limits: dict[str, float]) -> Finding:
    sweep = topview_settings.sweep_after
    age = m.oldest_waiting_seconds
    level = _graded(
        age, sweep * limits["STUCK_WARNING_FACTOR"], sweep * limits["STUCK_CRITICAL_FACTOR"]
    )
    if m.oldest_waiting_at is None:
        return Finding("stuck_notices", level, "No notice is waiting to be processed.", 0.0)
    summary = (
        f"The notice waiting longest to be processed waits since {age:.0f} s "
        f"(SWEEP_AFTER is {sweep:.0f} s)"
    )
    if level:
        summary += ": is the sweep (topview_sweep, or the queue's sweep job) running?"
    return Finding("stuck_notices", level, _sentence(summary), age)


def probe_failed(m: Measurements, limits: dict[str, float]) -> Finding:
    level = _graded(m.failed_24h, limits["FAILED_24H_WARNING"], limits["FAILED_24H_CRITICAL"])
    summary = f"{m.failed_24h} notice(s) received in the last 24 h failed in a receiver"
    if level:
        summary += "; see the failed notices in the admin and replay them once fixed"
    return Finding("failed_notices", level, _sentence(summary), float(m.failed_24h))


def probe_overdue(m: Measurements, limits: dict[str, float]) -> Finding:
    level = _graded(m.overdue_tasks, limits["OVERDUE_WARNING"], limits["OVERDUE_CRITICAL"])
    summary = f"{m.overdue_tasks} open task(s) are overdue past their poll time"
    if level:
        summary += ": is topview_reconcile (or the Celery or Django Tasks reconcile job) running?"
    return Finding("overdue_tasks", level, _sentence(summary), float(m.overdue_tasks))


def probe_silence(m: Measurements, limits: dict[str, float]) -> Finding:
    if not m.has_open_tasks:
        return Finding("notice_silence", Level.OK, "No task is waiting for its outcome.")
    hours = (
        (m.now - m.last_notice_at).total_seconds() / 3600
        if m.last_notice_at is not None
        else float("inf")
    )
    level = _graded(hours, limits["SILENCE_WARNING_HOURS"], limits["SILENCE_CRITICAL_HOURS"])
    when = "never" if m.last_notice_at is None else f"{hours:.1f} h ago"
    summary = f"Tasks are waiting for their outcome; the last notice arrived {when}"
    if level:
        summary += ": are Topview's callbacks reaching NOTICE_URL?"
    value = None if hours == float("inf") else hours
    return Finding("notice_silence", level, _sentence(summary), value)


#: What each misconfiguration means and what to check, in words an operator new to the app
#: can act on.
MISCONFIGURATION_ADVICE = {
    "wrong_uid_known_sender": (
        "requests with this site's path token (or from an allowed address) came with a "
        "Topview-Uid it does not know: if Topview sent them, its results are being lost. "
        "Compare TOPVIEW_CALLBACKS['UID'] (and each UID in ['ACCOUNTS']) with the UID under "
        "'API Settings' in Topview"
    ),
    "wrong_token_known_uid": (
        "requests with this site's Topview-Uid came with a wrong or missing path token: if "
        "Topview sent them, its results are being lost. Check that each account's NOTICE_URL "
        "(the URL Topview was given) ends in one of its NOTICE_TOKENS. The UID is not a "
        "secret: if NOTICE_URL is right, someone who knows the UID sent them"
    ),
    "address_not_allowed": (
        "requests with the right UID and path token came from an address outside "
        "ALLOWED_IPS: Topview may be calling from a new address (add it), or the token has "
        "leaked (rotate it)"
    ),
}


def probe_rejections(m: Measurements, limits: dict[str, float]) -> Finding:
    level = _graded(m.rejections_1h, limits["REJECTIONS_WARNING"], float("inf"))
    if m.misconfigured_1h >= limits["MISCONFIGURATION_CRITICAL"]:
        level = Level.CRITICAL
    counts = m.rejection_reasons_1h
    reasons = ", ".join(
        f"{reason}: {count}" for reason, count in sorted(counts.items(), key=lambda rc: -rc[1])
    )
    plural = "" if m.rejections_1h == 1 else "s"
    summary = f"{m.rejections_1h} request{plural} refused in the last hour"
    if reasons:
        summary += f" ({reasons})"
    advice = [text for reason, text in MISCONFIGURATION_ADVICE.items() if counts.get(reason)]
    if advice:
        summary += ". Probably a settings mistake: " + "; ".join(advice)
    elif any(counts.get(reason) for reason in STRAY_REASONS):
        summary += ". " + _stray_explanation()
    return Finding("rejected_deliveries", level, _sentence(summary), float(m.rejections_1h))


def _stray_explanation() -> str:
    """What refusals without any of this site's credentials mean on this site."""
    accounts = topview_settings.accounts.values()
    if accounts and all(a.notice_tokens or a.allowed_ips for a in accounts):
        return (
            "None of them carried this site's path token or came from an allowed address: "
            "someone sent a bad request (a scanner, a guess, a test by hand), not Topview, "
            "whose notices carry both. Nothing to fix while notices keep arriving"
        )
    return (
        "Without a path token (NOTICE_TOKENS) this site cannot tell a stranger's request "
        "with a wrong Topview-Uid (a scanner, a guess, a test by hand: the usual case) from "
        "Topview calling with a UID this site does not know. If notices stop arriving (see "
        "notice_silence), compare TOPVIEW_CALLBACKS['UID'] with the UID under 'API Settings' "
        "in Topview; set NOTICE_TOKENS to tell the two apart"
    )


def probe_uncertain(m: Measurements, limits: dict[str, float]) -> Finding:
    count = m.uncertain_submissions
    level = _graded(count, limits["UNCERTAIN_WARNING"], limits["UNCERTAIN_CRITICAL"])
    summary = f"{count} queued submission(s) are uncertain (sent, the answer lost)"
    if level:
        summary += (
            ": the tasks may exist at Topview. Resend or give them up in the admin "
            "(submitted tasks, status uncertain), unless their callbacks resolve them"
        )
    return Finding("uncertain_submissions", level, _sentence(summary), float(count))


def probe_credit(m: Measurements, limits: dict[str, float]) -> Finding:
    warning, critical = limits["CREDIT_WARNING"], limits["CREDIT_CRITICAL"]
    if warning <= 0 and critical <= 0:
        return Finding("credit", Level.OK, "Credit not checked (HEALTH CREDIT_WARNING is 0).")
    known = {name: left for name, left in m.credits.items() if left is not None}
    unknown = sorted(name for name, left in m.credits.items() if left is None)
    if not known:
        summary = "The remaining credit could not be read"
        if unknown:
            summary += f" (account {', '.join(unknown)}; see the log)"
        return Finding("credit", Level.WARNING, _sentence(summary))
    name, lowest = min(known.items(), key=lambda item: item[1])
    level = Level.OK
    if critical > 0 and lowest <= critical:
        level = Level.CRITICAL
    elif warning > 0 and lowest <= warning:
        level = Level.WARNING
    summary = f"The lowest remaining credit is {lowest:g}, account {name}"
    if level:
        summary += ": top it up, or queued submissions wait (4100) and submits fail"
    if unknown:
        summary += f"; unknown for {', '.join(unknown)}"
    return Finding("credit", level, _sentence(summary), lowest)


BUILTIN_PROBES: tuple[Probe, ...] = (
    probe_stuck,
    probe_failed,
    probe_overdue,
    probe_silence,
    probe_rejections,
    probe_uncertain,
    probe_credit,
)


def evaluate(m: Measurements) -> list[Finding]:
    """Every probe's finding, built-in ones first, with the configured thresholds."""
    limits = topview_settings.health
    return [probe(m, limits) for probe in BUILTIN_PROBES]


def check(now: datetime | None = None) -> list[Finding]:
    """``evaluate(measure(now))``."""
    return evaluate(measure(now))


def worst(findings: list[Finding]) -> Level:
    """The most severe level among ``findings`` (OK when there are none)."""
    return max((finding.level for finding in findings), default=Level.OK)
