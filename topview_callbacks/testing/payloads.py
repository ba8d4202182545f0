"""Realistic Topview notice bodies: ``notice_payload`` and the ``success_result`` inside it.

The results follow the query-task answers in Topview's API documentation, one shape per
bizType; media URLs are fresh for every call so that tests can tell outputs apart.
"""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Callable
from typing import Any

_CDN = "https://aigc.s3.amazonaws.com/example"


def _video(script_id: int = 0) -> dict[str, Any]:
    name = uuid_module.uuid4().hex
    return {
        "scriptId": script_id,
        "status": "success",
        "title": None,
        "description": None,
        "videoUrl": f"{_CDN}/{name}_topview.ai.mp4",
        "coverUrl": f"{_CDN}/{name}.jpg",
        "videoDuration": 36096000,
    }


def _ai_avatar() -> dict[str, Any]:
    return {
        "aiavatarId": uuid_module.uuid4().hex,
        "aiavatarName": "Demo avatar",
        "gender": "female",
        "coverUrl": f"{_CDN}/avatar.jpg",
        "previewVideoUrl": f"{_CDN}/avatar.mp4",
        "ethnicities": [],
        "voiceoverIdDefault": None,
        "faceSquareConfig": None,
    }


def _file(kind: str) -> dict[str, Any]:
    extension = {"video": "mp4", "image": "png"}[kind]
    return {
        "status": "success",
        "filePath": f"{_CDN}/{uuid_module.uuid4().hex}.{extension}",
        "width": 1080,
        "height": 1920,
        "errorMsg": None,
    }


def success_result(biz_type: str) -> dict[str, Any]:
    """A realistic query-task result of a successful task of ``biz_type``."""
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "SCRAPER": lambda: {
            "productLink": "https://shop.example.com/p/1",
            "productName": "Demo product",
            "productDescription": "A product for the demo.",
            "productImages": [f"{_CDN}/product.jpg"],
            "productVideos": [],
        },
        "ZERO_SHOT_AVATAR": lambda: {"outputVideoUrl": f"{_CDN}/avatar_video.mp4"},
        "M2V_PREVIEW": lambda: {"previewVideos": [_video()]},
        "M2V_EXPORT": lambda: {"exportVideos": [_video()]},
        "M2V_SCRIPT": lambda: {
            "scriptContentList": [
                {"scriptId": 0, "scriptContents": [{"segId": 0, "segText": "Meet the product."}]}
            ]
        },
        "PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE": lambda: {
            "taskStatus": "success",
            "productReplaceResult": [
                {"key": "0", "faceExistence": True, "url": f"{_CDN}/replaced.png"}
            ],
        },
        "PRODUCT_AVATAR_IMAGE2VIDEO": lambda: {
            "finishedVideoUrl": f"{_CDN}/product_avatar.mp4",
            "aiAvatar": _ai_avatar(),
        },
        "PRODUCT_ANY_SHOOT": lambda: {"images": [_file("image")]},
        "COMMON_TASK_IMAGE2VIDEO": lambda: {"videos": [_file("video")], "costCredit": 10},
        "COMMON_TASK_TEXT2VIDEO": lambda: {"videos": [_file("video")], "costCredit": 10},
        "COMMON_TASK_TEXT2IMAGE": lambda: {"images": [_file("image")], "costCredit": 2},
        "COMMON_TASK_VIDEO2AIAVATAR": lambda: {"aiAvatar": _ai_avatar()},
        "VOICE_CLONE": lambda: {
            "voice": {"voiceId": "v-demo", "voiceName": "Demo", "demoAudioUrl": f"{_CDN}/voice.mp3"}
        },
        "VOICE_TEXT2VOICE": lambda: {
            "voice": {"voiceId": "v-demo", "demoAudioUrl": f"{_CDN}/speech.mp3", "durations": 4.2},
            "costCredit": 1,
        },
    }
    build = builders.get(biz_type, dict)
    return build()


def notice_payload(
    biz_type: str = "M2V_PREVIEW",
    *,
    status: str = "success",
    task_id: str | None = None,
    uuid: str | None = None,
    error_msg: str | None = None,
    result: dict[str, Any] | None = None,
    result_as_string: bool = True,
) -> dict[str, Any]:
    """A notice body as Topview sends it; ``result`` is a JSON string, as in the contract."""
    task_id = task_id or uuid_module.uuid4().hex
    if result is None:
        result = success_result(biz_type) if status == "success" else {}
        result = {**result, "taskId": task_id, "status": status}
        if status != "success":
            result["errorMsg"] = error_msg or "Generation failed (test notice)."
    return {
        "uuid": uuid or uuid_module.uuid4().hex,
        "bizType": biz_type,
        "taskId": task_id,
        "status": status,
        "errorMsg": error_msg
        if error_msg is not None
        else ("" if status == "success" else "Generation failed (test notice)."),
        "result": json.dumps(result, separators=(",", ":")) if result_as_string else result,
    }
