# lumbarstats — the two commands of the README, and a few helpers.
#   make reproduce   set up .venv from the lock, generate the synthetic register if absent, reproduce the report
#   make test        set up .venv from the lock, run the whole test suite
# Every install goes through requirements.lock (exact versions, sha256-checked by pip --require-hashes),
# then lumbarstats itself with --no-deps. Only Python >= 3.11 with venv, make and the package index needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LOCK   ?= requirements.lock
SCALE  ?= 1.0
SEED   ?= 2024
DATA   ?= data/synthetic
OUT    ?= output
KERNEL ?= lumbarstats
PYTEST_ARGS ?=
# the lock is regenerated with uv in a throwaway venv (build/uv); UPGRADE=1 moves every pin to the newest
UV_VERSION ?= 0.13.9
UPGRADE ?=
# test-installed: a non-editable install (pip install .) in its own venv, suite run against it
IVENV  ?= build/installed-venv
IPY    := $(IVENV)/bin/python

.PHONY: reproduce test install install-test venv synth bench wheelhouse lint clean lab lock lock-check \
        test-installed

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

# installs the lock once per change of it (the stamp is a copy of the lock that was installed)
$(VENV)/.installed-lock: $(LOCK) pyproject.toml | $(PY)
	$(PY) tools/lock.py check --lock $(LOCK)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	cp $(LOCK) $@

install: $(VENV)/.installed-lock
	$(PY) -m lumbarstats install-kernel --name $(KERNEL)

# the lock carries the test extra too: one environment for tests and the report
install-test: install

reproduce: install
	$(PY) -m lumbarstats reproduce --data $(DATA) --out $(OUT) --scale $(SCALE) --seed $(SEED) --kernel $(KERNEL)

test: install-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The suite against a non-editable install (as on a research server): `-P` keeps the source tree off
# sys.path, and tests/conftest.py stops the run if lumbarstats is imported from anywhere but $(IVENV).
test-installed:
	$(PYTHON) -m venv --clear $(IVENV)
	$(IPY) -m pip install --quiet --upgrade pip
	$(IPY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(IPY) -m pip install --quiet --no-deps --no-build-isolation .
	$(IPY) -m pip check
	$(IPY) -m lumbarstats install-kernel --name $(KERNEL)
	LUMBARSTATS_TEST_INSTALLED=$(abspath $(IVENV)) $(IPY) -P -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

synth: install
	$(PY) -m lumbarstats synth --out $(DATA) --scale $(SCALE) --seed $(SEED)

bench: install
	$(PY) bench/bench_spine.py --scale $(SCALE)
	$(PY) bench/bench_synth_aggregate.py
	$(PY) bench/bench_standardize.py
	$(PY) bench/bench_survival.py

wheelhouse: $(PY)
	$(PY) tools/wheelhouse.py --out wheelhouse --lock $(LOCK)

# JupyterLab at the project root (notebooks/, data/ and output/ all browsable); the notebooks find data/
# and output/ from the project root, whatever folder Jupyter starts their kernel in (lumbarstats.project)
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. notebooks/01_annual_rates.ipynb

lint: install-test
	$(VENV)/bin/ruff check lumbarstats tests bench tools

# Regenerate the lock from pyproject.toml (needs the package index). Pins already in the lock are kept
# unless pyproject.toml requires otherwise; UPGRADE=1 takes the newest versions.
UV := build/uv/bin/uv
$(UV):
	$(PYTHON) -m venv build/uv
	build/uv/bin/python -m pip install --quiet uv==$(UV_VERSION)

lock: $(UV)
	$(PYTHON) tools/lock.py build-requires | $(UV) pip compile pyproject.toml - \
	    --extra test --extra notebook --extra spark --universal --python-version 3.11 --generate-hashes \
	    --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) --quiet -o $(LOCK)
	$(PYTHON) tools/lock.py check --lock $(LOCK)

lock-check:
	$(PYTHON) tools/lock.py check --lock $(LOCK)

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache
