# Two entry points for a fresh machine: `make run` (the REPL on the embedded default model) and
# `make test` (the whole suite). Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run test test-fast doctor benchmarks lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

run: install
	$(BIN)/metaspider agent run agents/qa.yaml

test: install
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow"

doctor: install
	$(BIN)/metaspider doctor --model smollm2-135m

benchmarks: install
	$(BIN)/python benchmarks/core_overhead.py
