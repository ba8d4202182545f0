"""What a result says a task cost: ``biz_types.cost_credit``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from topview_callbacks.biz_types import cost_credit


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"costCredit": 10}, Decimal("10")),
        ({"costCredit": 2.5}, Decimal("2.5")),
        ({"costCredit": "1.25"}, Decimal("1.25")),
        ({"costCredit": 0}, Decimal("0")),
        ({}, None),
        (None, None),
        ("a string", None),
        ({"costCredit": None}, None),
        ({"costCredit": True}, None),
        ({"costCredit": "many"}, None),
        ({"costCredit": -1}, None),
        ({"costCredit": float("nan")}, None),
        ({"costCredit": 1e30}, None),
        ({"costCredit": [1]}, None),
    ],
)
def test_cost_credit(result: Any, expected: Decimal | None) -> None:
    assert cost_credit(result) == expected
