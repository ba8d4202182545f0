#!/usr/bin/env bash
# Creates .venv and installs the package in editable mode, once, or again when
# pyproject.toml changes. Python: $PYTHON, else python3.11, else python3. Django: the
# newest release this Python supports, or $DJANGO_SPEC (e.g. DJANGO_SPEC="Django==6.0.*").
#
#   scripts/bootstrap.sh        everything a contributor needs: the celery and testing
#                               extras and the `dev` dependency group (PEP 735: tests,
#                               Playwright, linters, docs), for make test, lint, docs
#   scripts/bootstrap.sh demo   what `make demo` runs on, no more: the package and its
#                               dependencies (Django, requests)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-dev}
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
full=.venv/.installed
demo=.venv/.installed-demo
current() { [ -f "$1" ] && [ ! pyproject.toml -nt "$1" ]; }
if [ "$mode" = demo ]; then
  # A full install serves the demo too.
  if ! current "$full" && ! current "$demo"; then
    .venv/bin/python -m pip install -q -e . "${DJANGO_SPEC:-Django>=5.2}"
    touch "$demo"
  fi
elif ! current "$full"; then
  # pip >= 25.1 reads dependency groups (--group).
  .venv/bin/python -m pip install -q --upgrade "pip>=25.1"
  .venv/bin/python -m pip install -q -e ".[celery,testing]" --group dev "${DJANGO_SPEC:-Django>=5.2}"
  touch "$full"
fi
