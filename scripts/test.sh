#!/usr/bin/env bash
# The test suite: once on SQLite (no services needed), then once more on the machine's
# PostgreSQL (127.0.0.1:5432), where the concurrency tests run. Without PostgreSQL the
# second run is skipped and said so, unless CI=true or TOPVIEW_REQUIRE_SERVICES=1, where
# a missing service fails the run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
required=0
if [ "${CI:-}" = "true" ] || [ "${TOPVIEW_REQUIRE_SERVICES:-0}" = "1" ]; then required=1; fi

echo "== tests on SQLite"
.venv/bin/python -m pytest "$@"

if .venv/bin/python scripts/services.py postgres; then
  echo "== tests on PostgreSQL (127.0.0.1:5432)"
  TOPVIEW_TEST_DATABASE=postgres .venv/bin/python -m pytest "$@"
elif [ "$required" = 1 ]; then
  echo "PostgreSQL is required here but not reachable at 127.0.0.1:5432." >&2
  exit 1
else
  echo "SKIPPED the PostgreSQL run (concurrency tests): nothing answers at 127.0.0.1:5432."
fi
