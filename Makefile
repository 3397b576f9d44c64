# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE := examples/minimal_cohort

.PHONY: demo test test-fast acceptance install system-deps lint typecheck pytest examples clean bench-radiomics-libraries

install: $(STAMP)

# torch first: 2.13.0 is a CPU build on this machine's disk; a bare `torch` would download
# a CUDA build of several GB.
# --no-compile: Python compiles each module the first time it is imported instead, so the
# install does not compile every file of torch and the rest (a fresh install here: 125 s
# instead of 231 s).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dev,bench]'
	touch $@

DEMO := runs/demo

# Validates the hand-written example, then simulates, extracts, trains (report and bundle) and
# predicts for a new virtual patient: `hepablate demo` prints where everything is. A rerun
# replaces the previous demo whole, once the new one is complete.
demo: install
	$(BIN)/hepablate validate $(EXAMPLE)
	$(BIN)/hepablate demo --out $(DEMO)

test: install system-deps lint typecheck pytest

# Debian packages the tests use: Chromium renders the study report (tests/report). Installed
# only when missing (needs root or sudo); Pango for the PDF comes with Debian's base system.
system-deps:
	command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }

# ruff, then the layering of docs/architecture.md (import-linter contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/lint-imports

# mypy's incremental cache lives outside the checkout (like pip's), so a fresh clone on this
# machine does not type-check every dependency again (80 s cold, a few seconds warm); mypy
# checks each file's hash against it, so a changed file is always checked again.
MYPY_CACHE ?= $(HOME)/.cache/hepablate/mypy

typecheck: install
	$(BIN)/mypy --cache-dir $(MYPY_CACHE)

# One worker per core; a module's tests stay on one worker, so its fixtures are built once.
# One BLAS/OpenMP/torch thread per worker: two workers on two cores, each spinning two threads,
# spend their time waiting for each other. The 15 slowest tests are printed.
THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
pytest: install
	$(THREADS) $(BIN)/python -m pytest -n auto --dist loadscope --durations=15

# The suite without the tests marked slow (those of more than a few seconds, and the modules
# whose fixtures take tens of seconds): a few minutes, for the edit-test loop.
test-fast: install
	$(THREADS) $(BIN)/python -m pytest -n auto --dist loadscope --durations=15 -m "not slow"

# Issue acceptance checks too long for CI (tests marked `acceptance`; about 40 min on 2 cores).
acceptance: install
	HEPABLATE_ACCEPTANCE=1 $(THREADS) $(BIN)/python -m pytest -n auto --dist loadscope -m acceptance

# Regenerate the example cohort's images (they are committed, and a test checks they match).
examples: install
	$(BIN)/python examples/make_minimal_cohort.py $(EXAMPLE)

# pyradiomics against MIRP (docs/benchmarks.md): pyradiomics does not install beside our pins,
# so both libraries go into a separate environment, .venv-radlibs.
RADLIBS := .venv-radlibs
bench-radiomics-libraries: install
	test -x $(RADLIBS)/bin/python || $(PYTHON) -m venv $(RADLIBS)
	$(RADLIBS)/bin/python -m pip install --quiet numpy versioneer setuptools wheel
	$(RADLIBS)/bin/python -m pip install --quiet --no-build-isolation pyradiomics-bhklab==3.1.4
	$(RADLIBS)/bin/python -m pip install --quiet mirp==2.7.0
	$(BIN)/hepablate simulate --n 20 --seed 5 --out runs/radlib_sim
	$(RADLIBS)/bin/python benchmarks/radiomics_libraries.py --cohort runs/radlib_sim \
		--ibsi ../shared/data/ibsi

clean:
	rm -rf $(VENV) $(RADLIBS) .pytest_cache .mypy_cache .ruff_cache
