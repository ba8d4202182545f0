"""docs/testing.md's examples, run as written, with the settings docs/installation.md
recommends (a path token in NOTICE_TOKENS).

The ```python blocks are read from the page and executed here: each ``test_*`` function
they define becomes a test of this module (``test_testing_md_<n>_<name>``), so pytest
gives it the fixtures it names. A changed example is tested as changed. A receiver a block
connects is connected only while that block's tests run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.dispatch import Signal

from tests.support.readme_site import ROOT, blocks, snippet
from topview_callbacks import signals

TESTING_PAGE = ROOT / "docs" / "testing.md"
INSTALLATION = ROOT / "docs" / "installation.md"


def recommended_settings() -> dict[str, Any]:
    """TOPVIEW_CALLBACKS as installation.md's settings block makes it, in a development
    shell (none of its variables set)."""
    code = snippet(INSTALLATION, "# settings.py (at the end)")
    namespace: dict[str, Any] = {"INSTALLED_APPS": []}
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("TOPVIEW_")}
    try:
        exec(compile(code, str(INSTALLATION), "exec"), namespace)
    finally:
        os.environ.update(saved)
    config: dict[str, Any] = namespace["TOPVIEW_CALLBACKS"]
    return config


@pytest.fixture(autouse=True)
def installation_settings(settings: Any) -> dict[str, Any]:
    config = {**recommended_settings(), "API_BASE_URL": "https://api.topview.test"}
    assert config["NOTICE_TOKENS"], "installation.md recommends a path token"
    settings.TOPVIEW_CALLBACKS = config
    return config


PUBLIC_SIGNALS = [value for value in vars(signals).values() if isinstance(value, Signal)]
#: Block number -> the receivers it connected, per signal (disconnected between its tests).
CONNECTED: dict[int, dict[Signal, list[Any]]] = {}


def _run_block(code: str, number: int, namespace: dict[str, Any]) -> None:
    before = {signal: list(signal.receivers) for signal in PUBLIC_SIGNALS}
    exec(compile(code, f"{TESTING_PAGE}, block {number}", "exec"), namespace)
    CONNECTED[number] = {}
    for signal, receivers in before.items():
        CONNECTED[number][signal] = [r for r in signal.receivers if r not in receivers]
        signal.receivers[:] = receivers
        signal.sender_receivers_cache.clear()


def _collect() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for number, code in enumerate(blocks(TESTING_PAGE, "python"), start=1):
        namespace: dict[str, Any] = {}
        _run_block(code, number, namespace)
        tests = {name: value for name, value in namespace.items() if name.startswith("test_")}
        assert tests, f"block {number} of testing.md defines no test"
        for name, function in tests.items():
            found[f"test_testing_md_{number}_{name.removeprefix('test_')}"] = function
    return found


EXAMPLES = _collect()
globals().update(EXAMPLES)


@pytest.fixture(autouse=True)
def block_receivers(request: pytest.FixtureRequest) -> Any:
    """The receivers the test's block connected, connected for the test only."""
    number = int(request.node.name.split("_")[3]) if request.node.name in EXAMPLES else 0
    connected = CONNECTED.get(number, {})
    for signal, receivers in connected.items():
        signal.receivers.extend(receivers)
        signal.sender_receivers_cache.clear()
    yield
    for signal, receivers in connected.items():
        signal.receivers[:] = [r for r in signal.receivers if r not in receivers]
        signal.sender_receivers_cache.clear()


def test_every_example_of_the_page_is_collected() -> None:
    assert len(EXAMPLES) == len(blocks(TESTING_PAGE, "python")) >= 2
