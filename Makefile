# Two entry points for a fresh machine (see README): `make run` and `make test`.
# Both create .venv with Python 3.11 and install the project pinned by requirements.lock (with uv, pip's indexes
# passed on; pip when uv cannot: scripts/venv_install.py. ANIPOP_INSTALL_WITH=pip forces pip).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint benchmark lock clean-outputs serve

# compileall: anipop's own bytecode, as the installer wrote every library's. Where PYTHONDONTWRITEBYTECODE is set
# (this kind of machine sets it), every process (each DVC stage, each test's subprocess) compiled src/ again.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python scripts/venv_install.py -c requirements.lock -e ".[dev]"
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

setup: $(STAMP)

## run: the whole pipeline on the embedded default data, then the metrics table (model vs train-mean)
run: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@cat reports/metrics.md

## lint: ruff over the code, tests, flows and benchmarks (CI runs it first, through `make test`)
lint: setup
	$(BIN)/ruff check src tests flows benchmarks scripts

## test: lint, then the whole offline test suite on two workers, a test file per worker at a time, the longest
## files first (tests/conftest.py: LONGEST_FIRST); it starts its own MLflow / Prefect servers on 127.0.0.1
test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

## serve: the registered champion over REST on 127.0.0.1:5001, from a checked local copy (docs/serving.md)
serve: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" \
	  $(BIN)/anipop serve -h 127.0.0.1 -p 5001

benchmark: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run_all.py

## lock: re-pin every dependency after changing pyproject.toml
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^(anipop|uv)( |==)' > requirements.lock
