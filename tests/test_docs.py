"""The documentation against the code, so that neither drifts: settings, checks, pages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from topview_callbacks.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# The pages the site must have (issue 10); mkdocs build --strict fails if one is missing.
REQUIRED_PAGES = {
    "index.md",
    "quickstart.md",
    "installation.md",
    "signals.md",
    "endpoint.md",
    "client-and-polling.md",
    "celery.md",
    "admin.md",
    "settings.md",
    "commands.md",
    "checks.md",
    "testing.md",
    "security.md",
    "architecture.md",
    "operations.md",
    "benchmark.md",
    "changelog.md",
    "releasing.md",
}
SETTINGS_ROW = re.compile(r"^\| `([A-Z_]+)` \| `([^`]*)`")


def settings_rows(page: Path) -> dict[str, str]:
    """``key -> default`` from the rows of a page's settings tables (``| key | default |``)."""
    rows = {}
    in_table = False
    for line in page.read_text().splitlines():
        if line.startswith("| key | default |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        match = SETTINGS_ROW.match(line)
        if in_table and match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_the_settings_page_lists_every_key_with_its_default() -> None:
    rows = settings_rows(DOCS / "settings.md")
    assert set(rows) == set(DEFAULTS)
    for key, default in rows.items():
        assert ast.literal_eval(default) == DEFAULTS[key], key


def test_other_pages_give_the_same_defaults() -> None:
    for page in DOCS.glob("*.md"):
        for key, default in settings_rows(page).items():
            if key in DEFAULTS:
                assert ast.literal_eval(default) == DEFAULTS[key], f"{page.name}: {key}"


def test_the_checks_page_lists_every_check_id_and_never_reuses_a_retired_one() -> None:
    code = "".join(path.read_text() for path in (ROOT / "topview_callbacks/checks").glob("*.py"))
    in_code = set(re.findall(r'check_id\("([EW]\d{3})"\)', code))
    page, retired_part = (DOCS / "checks.md").read_text().split("## Retired ids")
    documented = set(re.findall(r"`topview_callbacks\.([EW]\d{3})`", page))
    retired = set(re.findall(r"^\| `([EW]\d{3})` \|", retired_part, re.MULTILINE))
    assert in_code, "no check ids found in topview_callbacks/checks/"
    assert documented == in_code
    assert retired and not retired & in_code


def nav_pages(nav: list[object]) -> set[str]:
    pages: set[str] = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages |= nav_pages(value)
        else:
            pages.add(str(value))
    return pages


def test_every_page_is_in_the_site_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert pages == {path.name for path in DOCS.glob("*.md")}
    assert pages >= REQUIRED_PAGES


def test_the_readmes_links_to_the_docs_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links, "the README links to the docs"
    for link in links:
        assert (ROOT / link).exists(), link
