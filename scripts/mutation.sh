#!/usr/bin/env bash
# Mutation testing of the processing folder with mutmut (docs/mutation-testing.md), on
# PostgreSQL: the inline path's SQL runs there inside a PL/pgSQL function, so that is where
# its mutants are judged. Slow (about an hour on two shared cores), so not part of CI.
# Prints the score per module and the surviving mutants. With arguments, re-runs only those
# mutants (names or globs, as `mutmut results` prints them) on the existing mutants/ copy.
#
# MUTATION_JOBS: parallel mutmut processes (default 2), each with a test database of its
# own, $TOPVIEW_TEST_PG_NAME_<n> (default test_topview_mutation_<n>), kept between runs.
# PostgreSQL: PGHOST, PGPORT, PGUSER as for the suite (127.0.0.1:5432, postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python -c 'import mutmut' 2>/dev/null || .venv/bin/python -m pip install -q "mutmut>=3.8,<4"
jobs=${MUTATION_JOBS:-2}
export TOPVIEW_TEST_DATABASE=postgres
export TOPVIEW_TEST_PG_NAME=${TOPVIEW_TEST_PG_NAME:-test_topview_mutation}
if [ $# -eq 0 ]; then
  rm -rf mutants
  # The scope of scripts/mutation_report.py.
  set -- "topview_callbacks.processing.*"
fi
start=$(date +%s)
.venv/bin/mutmut run --max-children "$jobs" "$@"
echo "mutmut ran for $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
.venv/bin/python scripts/mutation_report.py --survivors
