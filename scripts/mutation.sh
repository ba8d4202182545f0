#!/usr/bin/env bash
# Mutation testing of the core with mutmut (docs/mutation-testing.md): the serializers, the
# view, processing and the two raw-SQL manager methods of models.py, against the SQLite suite.
# Slow (about half an hour on two cores), so not part of CI. Prints the score per module and
# the surviving mutants. With arguments, re-runs only those mutants (names or globs, as
# `mutmut results` prints them) on the existing mutants/ copy.
# MUTATION_JOBS sets the number of parallel workers (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python -c 'import mutmut' 2>/dev/null || .venv/bin/python -m pip install -q "mutmut>=3.8,<4"
jobs=${MUTATION_JOBS:-2}
if [ $# -eq 0 ]; then
  rm -rf mutants
  # The scope of scripts/mutation_report.py: models.py is limited to the manager's SQL paths.
  set -- "topview_callbacks.serializers.*" "topview_callbacks.views.*" \
    "topview_callbacks.processing.*" "topview_callbacks.models.xǁNoticeManagerǁ*"
fi
start=$(date +%s)
.venv/bin/mutmut run --max-children "$jobs" "$@"
echo "mutmut ran for $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
.venv/bin/python scripts/mutation_report.py --survivors
