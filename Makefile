.PHONY: demo test test-load lint docs bench mutation

demo:  ## set up and serve the example project on http://127.0.0.1:8000 (admin / admin)
	scripts/demo.sh

test:  ## run the test suite (SQLite, then PostgreSQL when it is up), without the load test
	scripts/test.sh

test-load:  ## the 10,000-delivery load test alone (PostgreSQL, Redis, gunicorn, a Celery worker)
	scripts/test.sh --load

lint:  ## ruff, ruff format, mypy --strict, import contracts (CI: nox -s lint)
	scripts/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && \
	  .venv/bin/mypy --strict topview_callbacks && .venv/bin/lint-imports

docs:  ## serve the documentation site with live reload on http://127.0.0.1:8001
	scripts/bootstrap.sh
	.venv/bin/mkdocs serve --dev-addr 127.0.0.1:8001

bench:
	scripts/bootstrap.sh
	.venv/bin/python bench/run.py

mutation:  ## mutation testing of the core with mutmut (slow, not in CI; docs/mutation-testing.md)
	scripts/mutation.sh
