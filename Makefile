.PHONY: test demo bench lint

test:            ## install what the tests need and run them
	scripts/test

demo:            ## the main job on the embedded SQLite store
	.venv/bin/redrive demo

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench:           ## every benchmark (minutes; prints figures and ratios)
	cd bench && for b in bench_*.py; do echo "== $$b"; ../.venv/bin/python $$b || exit 1; done
