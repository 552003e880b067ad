# ecglens — two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
DEMO_OUT ?= demo_out

SMOKE_VENV ?= .venv-smoke
WHEEL_DIR ?= dist

.PHONY: demo test lint docs wheel-smoke bench setup setup-dev clean

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

# `make test`: lint, the test suite, the API reference, and the wheel installed in a fresh venv (CLI smoke test).
test: setup-dev lint
	$(BIN)/python -m pytest -n 2 -q
	$(MAKE) --no-print-directory docs wheel-smoke

# The API reference from the docstrings (mkdocs + mkdocstrings; mkdocs.yml, docs/api/); warnings are errors.
docs: setup-dev
	$(BIN)/mkdocs build --strict --quiet

# Build the wheel as a user gets it (version from the git tags, setuptools-scm) and install it, without its
# dependencies, in a fresh venv that sees the dev venv's packages through a .pth file (torch is not downloaded
# again; the source tree is not on its path). Then run the CLI from it outside the repository.
wheel-smoke: setup-dev
	rm -rf $(WHEEL_DIR) $(SMOKE_VENV)
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w $(WHEEL_DIR) .
	$(BIN)/python -m venv --without-pip $(SMOKE_VENV)
	$(SMOKE_VENV)/bin/python -c "import site, sysconfig; open(site.getsitepackages()[0] + '/dev-venv.pth', 'w').write(sysconfig.get_paths(vars={'base': '$(abspath $(VENV))', 'platbase': '$(abspath $(VENV))'})['purelib'] + '\n')"
	$(BIN)/pip --python $(SMOKE_VENV)/bin/python install --quiet --no-deps --no-index --target \
		"$$($(SMOKE_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')" $(WHEEL_DIR)/ecglens-*.whl
	cd $(SMOKE_VENV) && ./bin/python -m ecglens --version \
		&& ./bin/python -c "import ecglens, sys; assert '$(SMOKE_VENV)' in ecglens.__file__, ecglens.__file__" \
		&& ./bin/python -m ecglens info age-sex-fast \
		&& ./bin/python -m ecglens --quiet predict "$$(./bin/python -c 'from ecglens.examples import example_paths as e; print(e()[0])')" \
			--model age-sex-fast --output smoke_preds.csv && cat smoke_preds.csv

bench: setup-dev
	$(BIN)/python benchmarks/bench_io.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_layout.py
	$(BIN)/python benchmarks/bench_harmonise.py
	$(BIN)/python benchmarks/bench_harmonise_steps.py
	$(BIN)/python benchmarks/bench_read_harmonise.py
	$(BIN)/python benchmarks/bench_startup.py
	$(BIN)/python benchmarks/bench_readers.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache $(SMOKE_VENV) $(WHEEL_DIR) site
