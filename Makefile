# Two commands on a fresh machine:
#   make demo   - creates .venv, installs tunebook and the dataset, runs the demo study
#   make test   - the same set-up plus Chromium, then the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned in pyproject.toml (2.13.0, the CPU build); never let a range pull a CUDA build.
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed
	scripts/system-deps.sh

demo: setup
	$(VENV)/bin/tunebook demo

test: $(VENV)/.installed
	scripts/system-deps.sh --with-browser
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: setup
	$(PY) benchmarks/engine.py

clean:
	rm -rf $(VENV) modellogs .pytest_cache
