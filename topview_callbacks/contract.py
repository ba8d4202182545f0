"""The incoming notice and the outgoing acknowledgement of the callback contract.

Validation is plain Python rather than a DRF ``Serializer``: a ``Serializer`` costs about
as much as the endpoint's one INSERT (docs/benchmark.md), and the six fields need
no more than the checks below. Every error message names the field and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from topview_callbacks.exceptions import NoticeValidationError

MAX_ID_LENGTH = 128
MAX_BIZ_TYPE_LENGTH = 64
# Deepest nesting of objects and arrays accepted, in the body and in a string ``result``.
# Real results nest 4 levels; deep nesting only serves to exhaust recursion downstream
# (receivers, the admin's pretty-printer, json.dumps).
MAX_JSON_DEPTH = 64
# "failed" is not in the contract, but some Topview products spell it so in query results.
STATUS_ALIASES = {"success": "success", "fail": "fail", "failed": "fail"}


@dataclass(frozen=True)
class IncomingNotice:
    raw_body: str
    uuid: str
    biz_type: str
    task_id: str
    status: str
    error_message: str
    result: dict[str, Any] | None


def _required_string(
    body: dict[str, Any], key: str, max_length: int, *, identifier: bool = False
) -> str:
    """``body[key]``, a non-empty string of at most ``max_length`` characters after
    stripping; an ``identifier`` must also be printable (it is logged and shown as is)."""
    if key not in body:
        raise NoticeValidationError(f"'{key}' is required.")
    value = body[key]
    if not isinstance(value, str):
        raise NoticeValidationError(f"'{key}' must be a string, not {_type_name(value)}.")
    value = value.strip()
    if not value:
        raise NoticeValidationError(f"'{key}' must not be empty.")
    if len(value) > max_length:
        raise NoticeValidationError(f"'{key}' is longer than {max_length} characters.")
    # A newline, a terminal escape or a bidirectional override in an id would forge or
    # garble the log lines that name it; str.isprintable() refuses every control, format
    # and separator character but the space, in C.
    if identifier and not value.isprintable():
        raise NoticeValidationError(
            f"'{key}' must not contain control, format or line separator characters."
        )
    return value


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), "null")


def _result(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value
        try:
            value = _strict_loads(text)
        except (ValueError, RecursionError):
            raise NoticeValidationError("'result' is a string but not valid JSON.") from None
        _check_depth(value, "'result'", text)
        if "\\u" in text:  # escapes inside a JSON string escaped the outer check
            _check_storable(value)
    if not isinstance(value, dict):
        raise NoticeValidationError(
            f"'result' must be a JSON object or a string holding one, not {_type_name(value)}."
        )
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def _check_depth(value: Any, what: str, text: str) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH (iteratively: no recursion to exhaust).

    ``text`` is the JSON ``value`` was parsed from: with no more opening brackets than
    the limit, it cannot nest deeper, and the walk is skipped (the usual case)."""
    if text.count("{") + text.count("[") <= MAX_JSON_DEPTH:
        return
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise NoticeValidationError(
                f"{what} is nested deeper than {MAX_JSON_DEPTH} levels of objects and arrays."
            )
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


def _check_storable(value: Any) -> None:
    """Refuse strings that JSON allows but databases cannot store (NUL, lone surrogates)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key)
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)
    elif isinstance(value, str):
        if "\x00" in value:
            raise NoticeValidationError("The notice must not contain NUL characters (\\u0000).")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise NoticeValidationError(
                "The notice contains an unpaired UTF-16 surrogate escape."
            ) from None


# One decoder for every notice: json.loads with hooks would build a new one per call.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _strict_loads(text: str) -> Any:
    """JSON as databases store it: no NaN or Infinity, which Python's json would accept."""
    return _STRICT_DECODER.decode(text)  # a leading byte order mark fails, as in json.loads


def parse_notice(raw_body: bytes) -> IncomingNotice:
    """Validate a notice body as the contract describes it, or raise NoticeValidationError."""
    if not raw_body.strip():
        raise NoticeValidationError("The request body is empty; expected a JSON notice.")
    try:
        text = raw_body.decode("utf-8")
        body = _strict_loads(text)
    except (ValueError, RecursionError):
        raise NoticeValidationError("The request body is not valid UTF-8 JSON.") from None
    if not isinstance(body, dict):
        raise NoticeValidationError(f"The notice must be a JSON object, not {_type_name(body)}.")
    _check_depth(body, "The notice", text)
    if "\\u" in text:  # only escapes can smuggle in what the checks below refuse
        _check_storable(body)
    status = _required_string(body, "status", 16)
    if status.lower() not in STATUS_ALIASES:
        raise NoticeValidationError("'status' must be 'success' or 'fail'.")
    error_message = body.get("errorMsg")
    if error_message is None:
        error_message = ""
    if not isinstance(error_message, str):
        raise NoticeValidationError(
            f"'errorMsg' must be a string or null, not {_type_name(error_message)}."
        )
    return IncomingNotice(
        raw_body=text,
        uuid=_required_string(body, "uuid", MAX_ID_LENGTH, identifier=True),
        biz_type=_required_string(body, "bizType", MAX_BIZ_TYPE_LENGTH, identifier=True),
        task_id=_required_string(body, "taskId", MAX_ID_LENGTH, identifier=True),
        status=STATUS_ALIASES[status.lower()],
        error_message=error_message,
        result=_result(body.get("result")),
    )


def acknowledgement(
    *,
    uuid: str | None,
    topview_uid: str | None,
    ok: bool,
    code: str = "200",
    message: str = "Success",
) -> dict[str, Any]:
    """The contract's answer, keys in the contract's order; ``code`` is a string."""
    return {
        "code": code,
        "message": message,
        "result": {"uuid": uuid, "topviewUid": topview_uid, "result": "success" if ok else "fail"},
    }
