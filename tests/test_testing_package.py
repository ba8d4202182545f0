"""``topview_callbacks.testing``: its public names, and imports that run one way inside it."""

from __future__ import annotations

import ast
from pathlib import Path

import topview_callbacks.testing as testing

PACKAGE = Path(testing.__file__).parent
# Each module may import only the ones before it.
ORDER = [
    "payloads",
    "outcome",
    "delivery",
    "fake.runner",
    "fake.media",
    "fake.api",
    "fake.server",
    "__init__",
]


def test_the_public_names_are_importable():
    assert sorted(testing.__all__) == sorted(set(testing.__all__))
    assert [name for name in testing.__all__ if not hasattr(testing, name)] == []


def _imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module, at module level?) for every import in ``tree``."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
    return found


def test_imports_run_one_way_with_no_function_local_imports() -> None:
    seen = set()
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        name = "__init__" if name == "fake.__init__" else name
        seen.add(name)
        allowed = {f"topview_callbacks.testing.{m}" for m in ORDER[: ORDER.index(name)]}
        for module, at_top in _imports(ast.parse(path.read_text())):
            assert at_top or module == "responses", f"{name} imports {module} in a function"
            assert module != "topview_callbacks.testing", f"{name} imports its own package"
            if module.startswith("topview_callbacks.testing."):
                assert module in allowed, f"{name} imports {module}, which is above it"
    assert seen == set(ORDER)  # every module was read, and each has its place in ORDER
