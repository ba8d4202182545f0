"""Prints the mutation score per module from mutmut's results in mutants/ (scripts/mutation.sh).

Usage: python scripts/mutation_report.py [--survivors]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

# The modules of docs/mutation-testing.md, by their mutated copy in mutants/: the processing
# folder, scripts/mutation.sh's scope.
ROOT = Path("mutants/topview_callbacks")
SCOPE = ("processing/*.py",)
# mutmut's exit codes (mutmut/stats.py), the ones a run of this suite produces.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update(dict.fromkeys((36, 24, -24, 152, 255), "timeout"))
COLUMNS = ("killed", "timeout", "survived", "no tests", "other")


def main() -> int:
    rows: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for path in sorted(ROOT.rglob("*.py.meta")):
        module = path.relative_to(ROOT).as_posix().removesuffix(".meta")
        if not any(fnmatch(module, pattern) for pattern in SCOPE):
            continue
        results = json.loads(path.read_text())["exit_code_by_key"]
        for name, code in sorted(results.items()):
            if code is None:
                continue  # not run: outside the patterns this run was given
            status = STATUS.get(code, "other")
            rows.setdefault(module, Counter())[status if status in COLUMNS else "other"] += 1
            if status == "survived":
                survivors.append(name)
    if not rows:
        print("No mutmut results in mutants/; run scripts/mutation.sh first.")
        return 1
    header = f"{'module':<28}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'total':>8}{'score':>8}"
    print(header)
    print("-" * len(header))
    grand: Counter[str] = Counter()
    for module, counts in sorted(rows.items(), key=lambda item: _order(item[0])):
        grand.update(counts)
        print(_row(module, counts))
    print("-" * len(header))
    print(_row("all", grand))
    print("score = (killed + timeout) / total")
    if "--survivors" in sys.argv[1:]:
        print("\nSurviving mutants (`.venv/bin/mutmut show NAME` in the repository root):")
        for name in survivors:
            print(f"  {name}")
    return 0


def _order(module: str) -> tuple[int, str]:
    return next(i for i, pattern in enumerate(SCOPE) if fnmatch(module, pattern)), module


def _row(label: str, counts: Counter[str]) -> str:
    total = sum(counts.values())
    score = (counts["killed"] + counts["timeout"]) / total if total else 0.0
    cells = "".join(f"{counts[c]:>10}" for c in COLUMNS)
    return f"{label:<28}{cells}{total:>8}{score:>8.1%}"


if __name__ == "__main__":
    sys.exit(main())
