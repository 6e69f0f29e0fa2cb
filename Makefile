# lumbarstats — the two commands of the README, and a few helpers.
#   make reproduce   set up .venv, generate the synthetic register if absent, reproduce the report
#   make test        set up .venv with the test extra, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SCALE  ?= 1.0
SEED   ?= 2024
DATA   ?= data/synthetic
OUT    ?= output
KERNEL ?= lumbarstats
PYTEST_ARGS ?=

.PHONY: reproduce test install install-test venv synth bench wheelhouse lint clean lab

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

venv: $(PY)

install: $(PY)
	$(PY) -m pip install --quiet -e .
	$(PY) -m lumbarstats install-kernel --name $(KERNEL)

install-test: $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m lumbarstats install-kernel --name $(KERNEL)

reproduce: install
	$(PY) -m lumbarstats reproduce --data $(DATA) --out $(OUT) --scale $(SCALE) --seed $(SEED) --kernel $(KERNEL)

test: install-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

synth: install
	$(PY) -m lumbarstats synth --out $(DATA) --scale $(SCALE) --seed $(SEED)

bench: install
	$(PY) bench/bench_synth_aggregate.py
	$(PY) bench/bench_standardize.py
	$(PY) bench/bench_survival.py

wheelhouse: $(PY)
	$(PY) tools/wheelhouse.py --out wheelhouse

lab: install
	$(PY) -m pip install --quiet -e '.[notebook]'
	$(VENV)/bin/jupyter lab notebooks

lint: install-test
	$(VENV)/bin/ruff check lumbarstats tests bench

clean:
	rm -rf $(OUT) build dist *.egg-info .pytest_cache
