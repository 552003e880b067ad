# ecglens — two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
DEMO_OUT ?= demo_out

.PHONY: demo test lint bench setup setup-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first, pinned, so that pip never pulls a multi-GB CUDA build as a dependency.
$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e ".[all]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[all,dev]"
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

demo: setup
	$(BIN)/ecglens demo --out $(DEMO_OUT)

# ruff's rule set is in pyproject.toml ([tool.ruff.lint]); the package's floors (no upward import, no cycle) in
# .importlinter. `make test` lints first and stops at the first finding.
lint: setup-dev
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/lint-imports --no-cache

test: setup-dev lint
	$(BIN)/python -m pytest -n 2 -q

bench: setup-dev
	$(BIN)/python benchmarks/bench_io.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_export.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
