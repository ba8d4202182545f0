.PHONY: demo test lint bench mutation

demo:  ## set up and serve the example project on http://127.0.0.1:8000 (admin / admin)
	scripts/demo.sh

test:  ## run the test suite (SQLite, then PostgreSQL when it is up)
	scripts/test.sh

lint:
	scripts/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy topview_callbacks

bench:
	scripts/bootstrap.sh
	.venv/bin/python bench/run.py

mutation:  ## mutation testing of the core with mutmut (slow, not in CI; docs/mutation-testing.md)
	scripts/mutation.sh
