"""The counters and histograms. Names and labels are public: dashboards and alerts use them.

Labels stay bounded: bizType (the 14 known ones and "other": ``biz_types.bounded``), status,
source, reason, answer, account (from settings). Never a task id, uuid or address.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: Seconds from a notice's arrival to the end of its processing.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: Seconds from a task's submission to its outcome (Topview's side: minutes to a day).
H = 3600
TURNAROUND_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, H, 3 * H, 6 * H, 12 * H, 24 * H, 48 * H)

notices_received = Counter(
    "topview_notices_received",
    "New notices stored, by callback or by poll.",
    ["biz_type", "status", "source"],
)
notices_redelivered = Counter(
    "topview_notices_redelivered",
    "Deliveries repeating a stored uuid (acknowledged, nothing new stored).",
    ["account"],
)
notices_rejected = Counter(
    "topview_notices_rejected",
    "Deliveries the endpoint refused (any non-2xx answer).",
    ["reason", "status"],
)
notices_processed = Counter(
    "topview_notices_processed",
    "Notices processed without a receiver failing; outcome duplicate: its task already had one.",
    ["biz_type", "outcome"],
)
notices_failed = Counter(
    "topview_notices_failed",
    "Processing attempts where a receiver raised (or the worker was lost).",
    ["biz_type"],
)
task_polls = Counter(
    "topview_task_polls",
    "Queries of a task's state by the polling fallback, by Topview's answer.",
    ["biz_type", "answer"],
)
tasks_expired = Counter(
    "topview_tasks_expired",
    "Tasks marked expired: no outcome within TASK_MAX_AGE.",
    ["biz_type"],
)
processing_latency = Histogram(
    "topview_notice_processing_latency_seconds",
    "From a notice's arrival to the end of its processing.",
    ["biz_type"],
    buckets=LATENCY_BUCKETS,
)
task_turnaround = Histogram(
    "topview_task_turnaround_seconds",
    "From a task's submission to its final outcome.",
    ["biz_type"],
    buckets=TURNAROUND_BUCKETS,
)
