#!/usr/bin/env bash
# Creates .venv and installs the package with its dev, celery and dev-tasks-db extras (once,
# or when pyproject.toml changes). Python: $PYTHON, else python3.11, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev,celery,dev-tasks-db]" "${DJANGO_SPEC:-Django>=5.2,<5.3}"
  touch "$stamp"
fi
