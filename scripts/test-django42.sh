#!/usr/bin/env bash
# The SQLite half of the suite on the oldest Django this app supports (4.2 LTS, with the
# last DRF release for it), in its own virtualenv: catches uses of newer Django APIs.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
venv=.venv-django42
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q -e ".[dev,celery]" "Django>=4.2,<5" \
  "djangorestframework>=3.15,<3.17"
"$venv/bin/python" -c 'import django, rest_framework as drf; print("== SQLite suite on Django", django.get_version(), "/ DRF", drf.VERSION)'
"$venv/bin/python" -m pytest -q "$@"
