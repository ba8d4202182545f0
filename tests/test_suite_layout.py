"""The suite's own layout: test modules share code through tests/support/, never by
importing one another or conftest.py (a test module that is also a library breaks when
it is renamed, run alone or collected twice, and hides what the suite shares)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.settings import UID

TESTS = Path(__file__).resolve().parent
TEST_MODULES = sorted(TESTS.glob("test_*.py"))
SUPPORT_MODULES = sorted((TESTS / "support").glob("*.py"))
BENCH_SCRIPTS = sorted((TESTS.parent / "bench").glob("*.py"))


def imported_names(source: str, package: str) -> list[tuple[int, str]]:
    """Every module an import statement of ``source`` may load, anywhere in it (inside
    functions too), with its line: ``from a import b`` names both ``a`` and ``a.b``, since
    ``b`` may be a module. Relative imports are resolved against ``package``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def is_test_module_or_conftest(name: str) -> bool:
    """Whether ``name`` is a test module or a conftest (``tests.test_x``, ``tests.conftest``,
    or either without the package, as a rootdir on sys.path would let one import them)."""
    parts = name.split(".")
    if parts[0] == "tests":
        parts = parts[1:2]
    return bool(parts) and (parts[0] == "conftest" or parts[0].startswith("test_"))


def forbidden_imports(path: Path, package: str) -> list[str]:
    """``file:line imports module`` for each test module or conftest ``path`` imports."""
    found = {
        (line, name)
        for line, name in imported_names(path.read_text(), package)
        if is_test_module_or_conftest(name)
    }
    # ``from tests.test_x import y`` once, not again for ``tests.test_x.y``.
    return [
        f"{path.relative_to(TESTS.parent)}:{line} imports {name}"
        for line, name in sorted(found)
        if (line, name.rpartition(".")[0]) not in found
    ]


def test_the_suite_has_test_modules_and_support_modules_to_check() -> None:
    assert len(TEST_MODULES) > 50
    assert {path.name for path in SUPPORT_MODULES} >= {"__init__.py", "settings.py"}


def test_no_test_module_imports_another_test_module_or_conftest() -> None:
    found = [line for path in TEST_MODULES for line in forbidden_imports(path, "tests")]
    assert found == [], "move what they share to tests/support/:\n" + "\n".join(found)


def test_the_support_package_imports_no_test_module_and_no_conftest() -> None:
    # conftest.py imports from tests/support/, never the other way.
    found = [line for path in SUPPORT_MODULES for line in forbidden_imports(path, "tests.support")]
    assert found == [], "\n".join(found)


def test_the_benchmarks_import_no_test_module_and_no_conftest() -> None:
    # They start the tests' workers and servers from tests/support/, as the tests do.
    found = [line for path in BENCH_SCRIPTS for line in forbidden_imports(path, "bench")]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    "script",
    ["archive.py", "celery_rate.py", "tasks_rate.py", "worker_memory.py", "worker_profile.py"],
)
def test_the_queue_benchmarks_start_with_todays_helpers(script: str) -> None:
    """Their imports resolve and their options parse (``--help`` runs nothing else)."""
    done = subprocess.run(
        [sys.executable, str(TESTS.parent / "bench" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "batch" not in done.stdout.lower()


@pytest.mark.parametrize(
    ("source", "package"),
    [
        ("from tests.test_admin import action", "tests"),
        ("from tests import test_admin", "tests"),
        ("import tests.test_admin", "tests"),
        ("from tests.conftest import ARCHIVED_SIZE", "tests"),
        ("from tests import conftest", "tests"),
        ("import conftest", "tests"),
        ("from .test_checks import GOOD", "tests"),
        ("from . import conftest", "tests"),
        ("from .. import test_checks", "tests.support"),
        ("def test_x():\n    from tests.test_checks_archiving import CELERY\n", "tests"),
    ],
)
def test_the_check_sees_every_way_to_import_a_test_module(source: str, package: str) -> None:
    assert any(is_test_module_or_conftest(name) for _, name in imported_names(source, package))


@pytest.mark.parametrize(
    ("source", "package"),
    [
        ("from tests.support.checks import GOOD, ids", "tests"),
        ("from tests.support import readme_site", "tests"),
        ("from tests.settings import TOPVIEW_CALLBACKS", "tests"),
        ("import tests.support.worker", "tests"),
        ("from .recording import key", "tests.support"),
        ("from topview_callbacks.testing import deliver_notice", "tests"),
    ],
)
def test_the_check_lets_support_and_package_imports_through(source: str, package: str) -> None:
    assert not any(is_test_module_or_conftest(name) for _, name in imported_names(source, package))


def test_one_settings_helper_and_one_test_uid() -> None:
    """topview() is defined once (tests/support/settings.py); the account's UID is written
    out once (tests/settings.py)."""
    helpers = [
        f"{path.name}:{node.lineno}"
        for path in [*TEST_MODULES, TESTS / "conftest.py"]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "topview"
    ]
    assert helpers == []
    retyped = [path.name for path in TEST_MODULES if UID in path.read_text()]
    assert retyped == []
