"""The app's models, one module per table family; import them from here."""

from __future__ import annotations

from topview_callbacks.models.media import (
    GIVEN_UP_MEDIA_STATES,
    ArchivedMedia,
    MediaState,
    archive_storage,
    reset_archive_storage,
)
from topview_callbacks.models.notices import (
    Notice,
    NoticeKey,
    NoticeSource,
    NoticeState,
    partitioned_notices,
)
from topview_callbacks.models.rejections import RejectedDelivery
from topview_callbacks.models.rollups import CreditHour, NoticeHour, RollupHour, TaskHour
from topview_callbacks.models.tasks import (
    FINAL_TASK_STATUSES,
    OPEN_TASK_STATUSES,
    POLLABLE_TASK_STATUSES,
    UNFINISHED_TASK_STATUSES,
    SubmittedTask,
    TaskStatus,
    owner_fields,
)

__all__ = [
    "FINAL_TASK_STATUSES",
    "GIVEN_UP_MEDIA_STATES",
    "OPEN_TASK_STATUSES",
    "POLLABLE_TASK_STATUSES",
    "UNFINISHED_TASK_STATUSES",
    "ArchivedMedia",
    "CreditHour",
    "MediaState",
    "Notice",
    "NoticeHour",
    "NoticeKey",
    "NoticeSource",
    "NoticeState",
    "RejectedDelivery",
    "RollupHour",
    "SubmittedTask",
    "TaskHour",
    "TaskStatus",
    "archive_storage",
    "owner_fields",
    "partitioned_notices",
    "reset_archive_storage",
]
