# Two commands on a fresh clone: `make run` and `make test`. Both create .venv,
# install the pinned dependencies once (again only when pyproject.toml or
# requirements.lock change) and then do their job.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# optional mlflow extra: no telemetry (mlflow reads DO_NOT_TRACK only as "true"),
# and its local file store (mlruns/) allowed (conf/mlflow/mlflow.yml)
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_ALLOW_FILE_STORE := true
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0
# shared machines: idle OpenMP threads sleep instead of spinning (3-6x faster
# torch kernels when cores are oversubscribed, see benchmarks/bench_twhin.py)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run test test-mlflow lint format viz bench clean-data

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev]"
	@touch $(STAMP)

run: setup
	$(BIN)/kedro run $(KEDRO_ARGS)
	@if [ -f data/08_reporting/comparison.md ]; then \
	  echo; echo "Method comparison (data/08_reporting/comparison.md):"; \
	  cat data/08_reporting/comparison.md; fi

# two pytest-xdist workers, one test file each at a time (module and session
# fixtures stay per file; the tiny default run is shared, tests/conftest.py);
# TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2
test: setup lint
	$(BIN)/pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# The optional MLflow integration, tested in its own virtual environment (the
# `mlflow` extra does not install against requirements.lock as pinned: see
# README, MLflow): the lock with pyarrow and importlib_metadata at the versions
# MLflow accepts. `make test` never installs it.
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

$(MLFLOW_STAMP): pyproject.toml requirements.lock
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	grep -v -i -E '^(pyarrow|importlib[-_]metadata)==' requirements.lock > $(MLFLOW_VENV)/constraints.txt
	printf 'pyarrow==25.0.1\nimportlib_metadata==9.1.0\n' >> $(MLFLOW_VENV)/constraints.txt
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c $(MLFLOW_VENV)/constraints.txt -e ".[dev,mlflow]"
	@touch $(MLFLOW_STAMP)

test-mlflow: $(MLFLOW_STAMP)
	$(MLFLOW_VENV)/bin/python -c "import kedro_mlflow, mlflow"  # fail, never skip
	$(MLFLOW_VENV)/bin/pytest tests/reporting/test_mlflow.py -rs $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

viz: setup
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 $(VIZ_ARGS)

# the benchmarks' peers (extra `bench`), installed once more only when the base
# set-up is (re)done; `make run` / `make test` never install them
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean-data:
	find data -mindepth 2 ! -name .gitkeep -delete
