"""Prints the mutation score per module from mutmut's results in mutants/ (scripts/mutation.sh).

Usage: python scripts/mutation_report.py [--survivors]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

# The scope of docs/mutation-testing.md; scripts/mutation.sh passes the same patterns to mutmut.
SCOPE = {
    "serializers": "topview_callbacks.serializers.*",
    "views": "topview_callbacks.views.*",
    "processing": "topview_callbacks.processing.*",
    "models (NoticeManager)": "topview_callbacks.models.xǁNoticeManagerǁ*",
}
# mutmut's exit codes (mutmut/stats.py), the ones a run of this suite produces.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS.update(dict.fromkeys((36, 24, -24, 152, 255), "timeout"))
COLUMNS = ("killed", "timeout", "survived", "no tests", "other")


def main() -> int:
    rows: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for path in sorted(Path("mutants/topview_callbacks").glob("*.py.meta")):
        results = json.loads(path.read_text())["exit_code_by_key"]
        for name, code in sorted(results.items()):
            module = next((m for m, pattern in SCOPE.items() if fnmatch(name, pattern)), None)
            if module is None:
                continue
            status = STATUS.get(code, "other") if code is not None else "not checked"
            rows.setdefault(module, Counter())[status if status in COLUMNS else "other"] += 1
            if status == "survived":
                survivors.append(name)
    if not rows:
        print("No mutmut results in mutants/; run scripts/mutation.sh first.")
        return 1
    header = f"{'module':<24}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'total':>8}{'score':>8}"
    print(header)
    print("-" * len(header))
    grand: Counter[str] = Counter()
    for module in SCOPE:
        counts = rows.get(module, Counter())
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


def _row(label: str, counts: Counter[str]) -> str:
    total = sum(counts.values())
    score = (counts["killed"] + counts["timeout"]) / total if total else 0.0
    cells = "".join(f"{counts[c]:>10}" for c in COLUMNS)
    return f"{label:<24}{cells}{total:>8}{score:>8.1%}"


if __name__ == "__main__":
    sys.exit(main())
