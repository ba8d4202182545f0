"""The notice types Topview sends and, per type, its API endpoints and output media.

This is the one table that the client, polling, the admin and ``Notice.media()`` read;
no other module hard-codes a Topview path. Mappings marked ``uncertain`` are inferred
(Topview does not publish which endpoint emits which bizType).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _


class BizType(models.TextChoices):
    SCRAPER = "SCRAPER", _("Product scraper")
    ZERO_SHOT_AVATAR = "ZERO_SHOT_AVATAR", _("Video avatar")
    M2V_PREVIEW = "M2V_PREVIEW", _("Avatar marketing video: preview")
    M2V_EXPORT = "M2V_EXPORT", _("Avatar marketing video: export")
    M2V_SCRIPT = "M2V_SCRIPT", _("Avatar marketing video: script")
    PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE = (
        "PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE",
        _("Product avatar: replace product image"),
    )
    PRODUCT_AVATAR_IMAGE2VIDEO = "PRODUCT_AVATAR_IMAGE2VIDEO", _("Product avatar: image to video")
    PRODUCT_ANY_SHOOT = "PRODUCT_ANY_SHOOT", _("Product AnyShoot")
    COMMON_TASK_IMAGE2VIDEO = "COMMON_TASK_IMAGE2VIDEO", _("Image to video")
    COMMON_TASK_TEXT2VIDEO = "COMMON_TASK_TEXT2VIDEO", _("Text to video")
    COMMON_TASK_TEXT2IMAGE = "COMMON_TASK_TEXT2IMAGE", _("Text to image")
    COMMON_TASK_VIDEO2AIAVATAR = "COMMON_TASK_VIDEO2AIAVATAR", _("Video to AI avatar")
    VOICE_CLONE = "VOICE_CLONE", _("Voice clone")
    VOICE_TEXT2VOICE = "VOICE_TEXT2VOICE", _("Text to voice")


@dataclass(frozen=True)
class MediaPath:
    """Where one kind of output URL sits in a result: dotted keys, ``[]`` for every item."""

    kind: str  # "video", "image", "audio"
    path: str


@dataclass(frozen=True)
class BizTypeSpec:
    submit_path: str
    query_path: str
    media: tuple[MediaPath, ...] = field(default_factory=tuple)
    uncertain: bool = False  # the endpoint mapping is our inference, not documented
    # Fields the client adds to every submit of this type (the caller's values win).
    submit_defaults: tuple[tuple[str, Any], ...] = ()
    # Where the task state is in the query result; "[]" means "every item" (see task_status).
    status_path: str = "status"
    # False: the client refuses to submit it (the bizType only names a stage that Topview
    # notifies about); its query endpoint still serves polling and VERIFY_WITH_QUERY.
    submittable: bool = True


# Endpoints that belong to no bizType (notice URL check, uploads, credit).
NOTICE_URL_CHECK_PATH = "/notice/notice_url/check"
UPLOAD_CREDENTIAL_PATH = "/v1/upload/credential"
UPLOAD_CHECK_PATH = "/v1/upload/check"
CREDIT_DETAIL_PATH = "/user/credit/detail"

# Query-result states as Topview documents them; "failed" is a spelling some products use.
FINAL_STATES = {"success": "success", "fail": "fail", "failed": "fail"}
UNFINISHED_STATES = frozenset({"init", "running"})


def _videos(prefix: str) -> tuple[MediaPath, ...]:
    return (MediaPath("video", f"{prefix}[].videoUrl"), MediaPath("image", f"{prefix}[].coverUrl"))


_AVATAR_MEDIA = (
    MediaPath("image", "aiAvatar.coverUrl"),
    MediaPath("video", "aiAvatar.previewVideoUrl"),
)

SPECS: dict[str, BizTypeSpec] = {
    BizType.SCRAPER: BizTypeSpec(
        "/v1/scraper/task/submit",
        "/v1/scraper/task/query",
        (MediaPath("image", "productImages[]"), MediaPath("video", "productVideos[]")),
    ),
    BizType.ZERO_SHOT_AVATAR: BizTypeSpec(
        "/v1/video_avatar/task/submit",
        "/v1/video_avatar/task/query",
        (MediaPath("video", "outputVideoUrl"),),
        uncertain=True,
    ),
    BizType.M2V_PREVIEW: BizTypeSpec(
        "/v1/m2v/task/submit",
        "/v1/m2v/task/query",
        _videos("previewVideos"),
        submit_defaults=(("preview", True),),
    ),
    # The export shares the M2V task id and query endpoint; its own state is per exported
    # video. Whether the top-level "status" follows the export is not documented.
    BizType.M2V_EXPORT: BizTypeSpec(
        "/v1/m2v/export",
        "/v1/m2v/task/query",
        _videos("exportVideos"),
        uncertain=True,
        status_path="exportVideos[].status",
    ),
    # The script stage of an M2V task: Topview has no endpoint that submits it on its own
    # (posting to the M2V submit starts a preview, whose notice comes as M2V_PREVIEW).
    BizType.M2V_SCRIPT: BizTypeSpec(
        "/v1/m2v/task/submit", "/v1/m2v/task/query", uncertain=True, submittable=False
    ),
    BizType.PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE: BizTypeSpec(
        "/v1/product_avatar/task/image_replace/submit",
        "/v1/product_avatar/task/image_replace/result",
        (MediaPath("image", "productReplaceResult[].url"),),
        status_path="taskStatus",
    ),
    BizType.PRODUCT_AVATAR_IMAGE2VIDEO: BizTypeSpec(
        "/v2/product_avatar/task/image2Video/submit",
        "/v2/product_avatar/task/image2Video/query",
        (MediaPath("video", "finishedVideoUrl"), *_AVATAR_MEDIA),
    ),
    BizType.PRODUCT_ANY_SHOOT: BizTypeSpec(
        "/v1/product_anyShoot/task/submit",
        "/v1/product_anyShoot/task/result",
        (MediaPath("image", "images[].filePath"),),
        uncertain=True,
    ),
    BizType.COMMON_TASK_IMAGE2VIDEO: BizTypeSpec(
        "/v2/common_task/image2video/task/submit",
        "/v2/common_task/image2video/task/query",
        (MediaPath("video", "videos[].filePath"),),
    ),
    BizType.COMMON_TASK_TEXT2VIDEO: BizTypeSpec(
        "/v1/common_task/text2video/task/submit",
        "/v1/common_task/text2video/task/query",
        (MediaPath("video", "videos[].filePath"),),
    ),
    BizType.COMMON_TASK_TEXT2IMAGE: BizTypeSpec(
        "/v1/common_task/text2image/task/submit",
        "/v1/common_task/text2image/task/query",
        (MediaPath("image", "images[].filePath"),),
    ),
    BizType.COMMON_TASK_VIDEO2AIAVATAR: BizTypeSpec(
        "/v1/common_task/video2aiAvatar/submit",
        "/v1/common_task/video2aiAvatar/query",
        _AVATAR_MEDIA,
    ),
    BizType.VOICE_CLONE: BizTypeSpec(
        "/v1/voice/clone/task/submit",
        "/v1/voice/clone/task/query",
        (MediaPath("audio", "voice.demoAudioUrl"),),
    ),
    BizType.VOICE_TEXT2VOICE: BizTypeSpec(
        "/v1/voice/text2voice/task/submit",
        "/v1/voice/text2voice/task/query",
        (MediaPath("audio", "voice.demoAudioUrl"),),
    ),
}


#: What ``bounded`` calls a bizType this version does not know.
OTHER = "other"


def bounded(biz_type: str) -> str:
    """``biz_type`` when this version knows it, else ``OTHER``: for metric labels and
    dashboard rows, which must not grow with whatever a notice's sender writes there."""
    return biz_type if biz_type in SPECS else OTHER


def spec_for(biz_type: str) -> BizTypeSpec | None:
    """The table row for ``biz_type``, or None for a type Topview added after this release."""
    return SPECS.get(biz_type)


def _walk(value: Any, keys: list[str]) -> list[Any]:
    if not keys:
        return [value]
    key, rest = keys[0], keys[1:]
    many = key.endswith("[]")
    key = key.removesuffix("[]")
    if not isinstance(value, dict) or key not in value:
        return []
    child = value[key]
    if many:
        items = child if isinstance(child, list) else []
        return [found for item in items for found in _walk(item, rest)]
    return _walk(child, rest)


def media_urls(biz_type: str, result: Any) -> list[tuple[str, str]]:
    """``(kind, url)`` for every output URL in ``result``; only http(s) URLs are returned."""
    spec = spec_for(biz_type)
    if spec is None or not isinstance(result, dict):
        return []
    found = []
    for media in spec.media:
        for url in _walk(result, media.path.split(".")):
            if isinstance(url, str) and url.lower().startswith(("https://", "http://")):
                found.append((media.kind, url))
    return found


def numbered_media(media: list[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """``(kind, index, url)``: ``media_urls`` numbered per kind from 0, in the table's order.

    ``(kind, index)`` names one output of a task: archiving keys its rows on it, and the
    admin finds the archived copy of a URL with it.
    """
    seen: dict[str, int] = {}
    numbered = []
    for kind, url in media:
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        numbered.append((kind, index, url))
    return numbered


def task_status(biz_type: str, result: Any) -> str:
    """The state of a task in a query result: "init", "running", "success" or "fail".

    Per-item states (``status_path`` with ``[]``) count as success when any item succeeded,
    fail when every item failed, and running otherwise; an unreadable result is "running",
    so polling tries again rather than deciding on a guess.
    """
    spec = spec_for(biz_type)
    path = spec.status_path if spec is not None else "status"
    values = [str(v).lower() for v in _walk(result, path.split(".")) if v is not None]
    if not values:
        return "running"
    if "[]" in path:
        if any(FINAL_STATES.get(v) == "success" for v in values):
            return "success"
        if all(FINAL_STATES.get(v) == "fail" for v in values):
            return "fail"
        return "running"
    value = values[0]
    if value in FINAL_STATES:
        return FINAL_STATES[value]
    return value if value in UNFINISHED_STATES else "running"


# The most credits one task may report; a larger costCredit (or one with more than 4
# decimals) is not stored, rather than fail the notice's recording.
MAX_COST_CREDIT = Decimal("9999999999")


def cost_credit(result: Any) -> Decimal | None:
    """What a result says the task cost (``costCredit``, at its top level, on every
    bizType that reports one), or None when it says nothing usable."""
    if not isinstance(result, dict):
        return None
    value = result.get("costCredit")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    if not cost.is_finite() or cost < 0 or cost > MAX_COST_CREDIT:
        return None
    return cost.quantize(Decimal("0.0001"))
