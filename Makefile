# Two entry points for a fresh machine: `make run` (the REPL on the embedded default model) and
# `make test` (the whole suite: unit, then integration). Both create .venv and install everything first.
# `make unit` runs the unit suite alone (no model file, no network), `make lint` runs ruff and mypy.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run test unit integration lint doctor benchmarks postgres-server

install: $(VENV)/.installed

# llama.cpp compiles for the build machine's CPU. Its AMX kernels crash (SIGSEGV in ldtilecfg) on virtual
# machines whose CPU advertises AMX, so llama-cpp-python is built without them, once, into a wheel folder
# of our own: pip's wheel cache is keyed by the download, not by the compiler flags.
LLAMA_CPP_VERSION = 0.3.36
NO_AMX = $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)
WHEELS ?= $(HOME)/.cache/metaspider/wheels/no-amx
LLAMA_WHEELS = $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	ls $(LLAMA_WHEELS) >/dev/null 2>&1 || CFLAGS="$(NO_AMX)" CXXFLAGS="$(NO_AMX)" \
		$(BIN)/python -m pip wheel --no-deps --no-cache-dir -w $(WHEELS) "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	$(BIN)/python -m pip install -q --no-deps --force-reinstall $(LLAMA_WHEELS)
	$(BIN)/python -m pip install -e ".[test,serve]"
	touch $@

run: install
	$(BIN)/metaspider agent run agents/qa.yaml

# The PostgreSQL memory tests start a server of their own from Debian's `postgresql` package. Without
# root or sudo the install is skipped here and so are those tests (under CI, .ci/run installs it and
# they must run).
postgres-server:
	@.ci/install-postgres || echo "note: could not install Debian's postgresql package; the PostgreSQL memory tests will be skipped"

# The unit suite runs in a process of its own, with sockets disabled and an empty model cache
# (tests/unit_tests/conftest.py enforces both for any way it is started), so a model loaded by an
# integration test can never make a unit test pass.
LINTED = metaspider tests benchmarks examples

test: unit integration

unit: install
	METASPIDER_HOME=$$(mktemp -d) $(BIN)/pytest tests/unit_tests --disable-socket --allow-unix-socket

integration: install postgres-server
	$(BIN)/pytest tests/integration_tests

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy metaspider/core metaspider/runtime

doctor: install
	$(BIN)/metaspider doctor --model smollm2-135m

benchmarks: install
	$(BIN)/python benchmarks/core_overhead.py
