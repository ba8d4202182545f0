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


def test_the_settings_page_says_who_needs_each_key() -> None:
    header = "| key | default | who needs it | meaning |"
    who: dict[str, str] = {}
    in_table = False
    for line in (DOCS / "settings.md").read_text().splitlines():
        in_table = line == header or (in_table and line.startswith("|"))
        if in_table and SETTINGS_ROW.match(line):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            assert len(cells) == 4, line
            who[cells[0].strip("`")] = cells[2]
    assert set(who) == set(DEFAULTS)
    assert all(len(answer) > 5 for answer in who.values()), who


def test_other_pages_give_the_same_defaults() -> None:
    compared = set()
    for page in DOCS.glob("*.md"):
        for key, default in settings_rows(page).items():
            if key in DEFAULTS:
                assert ast.literal_eval(default) == DEFAULTS[key], f"{page.name}: {key}"
                compared.add(page.name)
    assert len(compared - {"settings.md"}) >= 3  # the pages with tables of their settings


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


# --- signals: docs/signals.md against signals.py and the calls that send them -------------

PACKAGE = ROOT / "topview_callbacks"
SECTION = re.compile(r"^### `(\w+)`$", re.MULTILINE)
KWARG_ROW = re.compile(r"^\| `(\w+)` \| ", re.MULTILINE)


def page_sections(page: Path) -> dict[str, str]:
    """``name -> text`` of each ``### `name` `` section of a page (to the next heading)."""
    text = page.read_text()
    found = {}
    for match in SECTION.finditer(text):
        rest = text[match.end() :]
        end = re.search(r"^#{2,3} ", rest, re.MULTILINE)
        found[match.group(1)] = rest[: end.start() if end else len(rest)]
    return found


def _signal_of(node: ast.expr) -> str | None:
    """``X`` for the expression ``signals.X``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "signals" else None
    return None


def _dict_keys(function: ast.AST, name: str) -> set[str]:
    """The string keys of the dict literal assigned to ``name`` in ``function``."""
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError(f"**{name} is not a dict literal of its function")


def sent_kwargs() -> dict[str, set[str]]:
    """Signal name -> the keyword arguments (``sender`` aside) the package sends it with,
    read from every ``signals.X.send(...)`` and ``lifecycle.send(signals.X, ...)``."""
    sent: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                    continue
                name = None
                if call.func.attr in ("send", "send_robust"):
                    name = _signal_of(call.func.value)
                    if name is None and call.args:
                        name = _signal_of(call.args[0])  # lifecycle.send(signals.X, ...)
                if name is None:
                    continue
                kwargs = sent.setdefault(name, set())
                for keyword in call.keywords:
                    if keyword.arg is None and isinstance(keyword.value, ast.Name):
                        kwargs |= _dict_keys(function, keyword.value.id)
                    elif keyword.arg != "sender":
                        kwargs.add(str(keyword.arg))
    return sent


def test_the_signals_page_documents_every_signal_and_every_kwarg_it_is_sent_with() -> None:
    from django.dispatch import Signal

    from topview_callbacks import signals

    biz = {name for name, s in vars(signals).items() if s in signals.by_biz_type.values()}
    public = {n for n, s in vars(signals).items() if isinstance(s, Signal)} - biz
    sections = page_sections(DOCS / "signals.md")
    assert set(sections) == public
    sent = sent_kwargs()
    assert set(sent) == public, "a signal that nothing sends, or one sent but not public"
    for name, text in sections.items():
        assert set(KWARG_ROW.findall(text)) == sent[name], name
        assert f"@receiver(signals.{name})" in text, f"{name} has no example receiver"
    page = (DOCS / "signals.md").read_text()
    for biz_type, signal in signals.by_biz_type.items():
        assert getattr(signals, biz_type.lower()) is signal
        assert f"| `{biz_type.lower()}` | `{biz_type}` |" in page


def test_signals_py_names_each_kwarg_beside_its_signal() -> None:
    source = (PACKAGE / "signals.py").read_text()
    comments = dict(
        (match.group(2), match.group(1))
        for match in re.finditer(r"((?:^#:.*\n)+)^(\w+) = Signal\(\)", source, re.MULTILINE)
    )
    for name, kwargs in sent_kwargs().items():
        for kwarg in kwargs:
            assert f"``{kwarg}``" in comments[name], f"signals.{name}: {kwarg}"


# --- commands: docs/commands.md against the commands' parsers -------------------------------


def command_flags() -> dict[str, set[str]]:
    """Command name -> its own flags (Django's common ones aside)."""
    from django.core.management import get_commands, load_command_class
    from django.core.management.base import BaseCommand

    common = {
        o for a in BaseCommand().create_parser("manage.py", "x")._actions for o in a.option_strings
    }
    flags = {}
    for name, app in get_commands().items():
        if app != "topview_callbacks":
            continue
        parser = load_command_class(app, name).create_parser("manage.py", name)
        options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
        flags[name] = options - common
    return flags


def test_the_commands_page_documents_every_command_and_flag() -> None:
    sections = page_sections(DOCS / "commands.md")
    flags = command_flags()
    assert set(sections) == set(flags)
    for name, text in sections.items():
        documented = set(re.findall(r"^\| `(--[\w-]+)` \| ", text, re.MULTILINE))
        assert documented == flags[name], name
        assert f"`manage.py {name}" in text, f"{name} has no usage line"
