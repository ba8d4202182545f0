"""pyproject.toml against what CI tests: classifiers, floors, extras, licence.

The supported matrix is ``MATRIX`` in noxfile.py (the sessions CI runs); the classifiers must
name exactly its Django and Python versions, and the dependency floors must be the versions
its oldest session installs.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest

import topview_callbacks

ROOT = Path(__file__).resolve().parent.parent


def noxfile_constant(name: str) -> Any:
    """A literal assigned at the top of noxfile.py (nox itself is not installed here)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py has no literal {name}")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def versions(classifiers: list[str], prefix: str) -> set[str]:
    return {
        c.removeprefix(prefix)
        for c in classifiers
        if c.startswith(prefix) and re.fullmatch(r"\d+\.\d+", c.removeprefix(prefix))
    }


def key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_django_classifiers_are_the_tested_series(project: dict[str, Any]) -> None:
    matrix = noxfile_constant("MATRIX")
    assert versions(project["classifiers"], "Framework :: Django :: ") == set(matrix)


def test_python_classifiers_are_the_tested_pythons(project: dict[str, Any]) -> None:
    matrix = noxfile_constant("MATRIX")
    tested = {python for pythons in matrix.values() for python in pythons}
    assert versions(project["classifiers"], "Programming Language :: Python :: ") == tested
    oldest = min(tested, key=key)
    assert project["requires-python"] == f">={oldest}"


def test_dependency_floors_are_what_the_oldest_session_installs(project: dict[str, Any]) -> None:
    matrix = noxfile_constant("MATRIX")
    oldest_django, _ = noxfile_constant("OLDEST")
    assert oldest_django == min(matrix, key=key)
    # Django and requests: no REST framework (the endpoint is a plain Django view).
    assert [dep.split(">=")[0] for dep in project["dependencies"]] == ["Django", "requests"]
    assert f"Django>={oldest_django}" in project["dependencies"]


def test_development_status_and_licence(project: dict[str, Any]) -> None:
    assert "Development Status :: 4 - Beta" in project["classifiers"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    assert "Copyright (c) 2026 topview_callbacks developers" in licence


def test_users_get_extras_and_developers_get_dependency_groups(project: dict[str, Any]) -> None:
    extras = project["optional-dependencies"]
    assert set(extras) == {"celery", "metrics", "tasks", "testing"}
    assert any(req.startswith("responses") for req in extras["testing"])
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    assert {"test", "lint", "docs", "dev"} <= set(groups)


def test_the_version_is_in_one_place(project: dict[str, Any]) -> None:
    assert project["dynamic"] == ["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", topview_callbacks.__version__)
