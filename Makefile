# The README's two commands: `make run` (the main job) and `make test` (the whole suite).
# Both bootstrap what they need first (Debian packages, zfs-fuse, the virtualenv).

VENV   := .venv
PY     := $(VENV)/bin/python
LADLE  := $(VENV)/bin/ladle

.PHONY: run test lint bench bootstrap clean

bootstrap:
	@bash scripts/bootstrap.sh
	@$(PY) -m compileall -q ladle  # under PYTHONDONTWRITEBYTECODE every ladle process would compile them

run: bootstrap
	@bash scripts/main-job.sh $(LADLE)

lint: bootstrap
	$(VENV)/bin/ruff check ladle tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(PY) -m pytest -q -p no:cacheprovider

bench: bootstrap
	@bash scripts/bootstrap.sh --bench
	$(PY) bench/run_latency
	$(PY) bench/ls_many
	$(PY) bench/memory
	$(PY) bench/net_latency
	$(PY) bench/pull
	$(PY) bench/create_image

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
