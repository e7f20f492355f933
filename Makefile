.PHONY: test test-fast demo bench lint

test:            ## install what the tests need, lint, type-check, run every test under coverage
	scripts/test

test-fast:       ## the quick loop: unit, contract on SQLite, ops (under 30 s, no server to start)
	.venv/bin/python -m pytest tests/unit tests/contract tests/ops -m "not postgres" -q

demo:            ## the main job on the embedded SQLite store
	.venv/bin/redrive demo

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench:           ## every benchmark (minutes; prints figures and ratios)
	cd bench && for b in bench_*.py; do echo "== $$b"; ../.venv/bin/python $$b || exit 1; done
