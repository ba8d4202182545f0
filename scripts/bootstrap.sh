#!/usr/bin/env bash
# Creates .venv and installs the package (editable) with its celery and testing extras and
# the `dev` dependency group (PEP 735: tests, linters, docs), once, or again when
# pyproject.toml changes. Python: $PYTHON, else python3.11, else python3. Django: the newest
# release this Python supports, or $DJANGO_SPEC (e.g. DJANGO_SPEC="Django==6.0.*").
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip >= 25.1 reads dependency groups (--group).
  .venv/bin/python -m pip install -q --upgrade "pip>=25.1"
  .venv/bin/python -m pip install -q -e ".[celery,testing]" --group dev "${DJANGO_SPEC:-Django>=5.2}"
  touch "$stamp"
fi
