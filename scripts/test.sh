#!/usr/bin/env bash
# The test suite: once on SQLite (no services needed), then once more on the machine's
# PostgreSQL (127.0.0.1:5432), where the concurrency, Celery-worker and PostgreSQL-only
# tests run. Without PostgreSQL the second run is skipped and said so, unless CI=true or
# TOPVIEW_REQUIRE_SERVICES=1, where a missing service fails the run. The 10,000-delivery
# load test is left out (marker `load`); `scripts/test.sh --load` (make test-load) runs it
# alone, on PostgreSQL. Other arguments go to pytest. docs/development.md lists what it
# starts and the variables that move it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
required=0
if [ "${CI:-}" = "true" ] || [ "${TOPVIEW_REQUIRE_SERVICES:-0}" = "1" ]; then required=1; fi
pg="${PGHOST:-127.0.0.1}:${PGPORT:-5432}"

if [ "${1:-}" = "--load" ]; then
  shift
  echo "== the load test on PostgreSQL ($pg)"
  exec env TOPVIEW_TEST_DATABASE=postgres TOPVIEW_REQUIRE_SERVICES=1 \
    .venv/bin/python -m pytest -m load tests/test_load.py "$@"
fi

echo "== tests on SQLite"
.venv/bin/python -m pytest -m "not load" "$@"

if .venv/bin/python scripts/services.py postgres; then
  echo "== tests on PostgreSQL ($pg)"
  TOPVIEW_TEST_DATABASE=postgres .venv/bin/python -m pytest -m "not load" "$@"
elif [ "$required" = 1 ]; then
  echo "PostgreSQL is required here but not reachable at $pg." >&2
  exit 1
else
  echo "SKIPPED the PostgreSQL run (concurrency tests): nothing answers at $pg."
fi
