# lmforge: the commands a new user runs. Everything installs into .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEV     := $(VENV)/.installed-dev
# torch is pinned here (a CPU build on this machine); pyproject.toml holds the range.
TORCH   ?= torch==2.13.0

.PHONY: install dev run test test-slow test-floors bench lint docs golden clean

# install: what `make run` needs; dev adds the test and lint tools (about 10 s more of a fresh install)
install: $(STAMP)

# pip byte-compiles one file at a time; compileall does it on every core afterwards, which made a
# fresh install on 2 cores about a fifth faster (docs/benchmarks.md). Files this Python cannot
# compile (torch ships one in 3.12 syntax) are skipped, as pip skips them.
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile "$(TORCH)"
	$(BIN)/pip install --quiet --no-compile -e .
	$(COMPILE)
	touch $(STAMP)

dev: $(DEV)

$(DEV): $(STAMP)
	$(BIN)/pip install --quiet --no-compile -e ".[dev]"
	$(COMPILE)
	touch $(DEV)

run: install  # the quick preset: the default run on a time budget, under five minutes with the install (README)
	$(BIN)/lmforge run --preset quick $(ARGS)

test: dev
	$(BIN)/pytest -q $(ARGS)

test-slow: dev
	$(BIN)/pip install --quiet -e ".[cluster,mlflow]"  # ray, for the data.executor=ray test; MLflow's store and resume
	$(BIN)/pytest -q -m slow $(ARGS)

# every core dependency at its declared floor (.ci/floors.py), then the test suite: a floor set
# too low fails here. pytest, import-linter and wandb come at their newest; the dev extra's
# PostgreSQL driver is not installed there, so the shared-study tests skip or differ.
test-floors:
	$(PY) -m venv .venv-floors
	.venv-floors/bin/pip install --quiet --upgrade pip
	.venv-floors/bin/pip install --quiet "$(TORCH)"
	$(PY) .ci/floors.py > .venv-floors/floors.txt
	.venv-floors/bin/pip install --quiet -c .venv-floors/floors.txt -e . "pytest>=8" "import-linter>=2.1,<3" "wandb>=0.17" "hypothesis>=6.100,<7"
	.venv-floors/bin/pip freeze | grep -i -E "^($$(cut -d= -f1 .venv-floors/floors.txt | paste -sd'|'))=="
	.venv-floors/bin/pytest -q $(ARGS)

bench: install
	$(BIN)/python bench/default_run.py $(ARGS)

docs: install
	$(BIN)/python -m lmforge.config.doc > docs/config.md

# the golden loss curve (docs/training.md): rewrite it when a change to training is intended
golden: dev
	$(BIN)/python -m tests.golden.smoke_curve --write

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .venv-floors runs .pytest_cache
