"""The public signals: one per bizType in the contract, and the mapping."""

from __future__ import annotations

from django.dispatch import Signal

from topview_callbacks import signals
from topview_callbacks.biz_types import BizType

CONTRACT_BIZ_TYPES = [
    "SCRAPER",
    "ZERO_SHOT_AVATAR",
    "M2V_PREVIEW",
    "M2V_EXPORT",
    "M2V_SCRIPT",
    "PRODUCT_AVATAR_REPLACE_PRODUCT_IMAGE",
    "PRODUCT_AVATAR_IMAGE2VIDEO",
    "PRODUCT_ANY_SHOOT",
    "COMMON_TASK_IMAGE2VIDEO",
    "COMMON_TASK_TEXT2VIDEO",
    "COMMON_TASK_TEXT2IMAGE",
    "COMMON_TASK_VIDEO2AIAVATAR",
    "VOICE_CLONE",
    "VOICE_TEXT2VOICE",
]


def test_every_contract_biz_type_has_a_module_level_signal_named_after_it() -> None:
    assert len(CONTRACT_BIZ_TYPES) == 14
    assert sorted(BizType.values) == sorted(CONTRACT_BIZ_TYPES)
    assert sorted(signals.by_biz_type) == sorted(CONTRACT_BIZ_TYPES)
    for biz_type in CONTRACT_BIZ_TYPES:
        signal = getattr(signals, biz_type.lower())
        assert isinstance(signal, Signal)
        assert signals.by_biz_type[biz_type] is signal


def test_signals_are_distinct_objects() -> None:
    all_signals = [signals.task_outcome, *signals.by_biz_type.values()]
    assert len({id(signal) for signal in all_signals}) == 15
