"""docs/testing.md's examples, run as written, with the settings docs/installation.md
recommends (a path token in NOTICE_TOKENS).

The ```python blocks are read from the page and executed here: each ``test_*`` function
they define becomes a test of this module (``test_testing_md_<n>_<name>``), so pytest
gives it the fixtures it names. A changed example is tested as changed.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.readme_site import ROOT, blocks, snippet

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


def _collect() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for number, code in enumerate(blocks(TESTING_PAGE, "python"), start=1):
        namespace: dict[str, Any] = {}
        exec(compile(code, f"{TESTING_PAGE}, block {number}", "exec"), namespace)
        tests = {name: value for name, value in namespace.items() if name.startswith("test_")}
        assert tests, f"block {number} of testing.md defines no test"
        for name, function in tests.items():
            found[f"test_testing_md_{number}_{name.removeprefix('test_')}"] = function
    return found


EXAMPLES = _collect()
globals().update(EXAMPLES)


def test_every_example_of_the_page_is_collected() -> None:
    assert len(EXAMPLES) == len(blocks(TESTING_PAGE, "python")) >= 2
