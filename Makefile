# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up everything themselves (system packages, a virtualenv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SHELL_SOURCES := bin/detect bin/compile bin/release bin/build bin/start-traffic-duplicator $(wildcard lib/*.sh) .ci/run $(wildcard scripts/*.sh) $(wildcard tests/fixtures/bin/*)

.PHONY: all test lint typecheck shellcheck pytest demo bench system-packages bench-packages venv clean

all: test

system-packages:
	@scripts/ensure-packages.sh shellcheck=shellcheck wrk=wrk curl=curl zstd=zstd

bench-packages: system-packages
	@scripts/ensure-packages.sh nginx=nginx-light

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(STAMP)

test: system-packages $(STAMP) lint typecheck shellcheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

shellcheck: system-packages
	shellcheck --shell=bash $(SHELL_SOURCES)

pytest: $(STAMP)
	$(BIN)/pytest -q

demo: system-packages $(STAMP)
	$(BIN)/python examples/demo.py

bench: bench-packages $(STAMP)
	$(BIN)/python bench/proxy.py
	$(PYTHON) -m venv .bench-venv && .bench-venv/bin/pip install --quiet uvloop && \
	  $(BIN)/python bench/proxy.py --python $(CURDIR)/.bench-venv/bin/python || echo "uvloop run skipped"
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) .bench-venv .pytest_cache .mypy_cache .ruff_cache .hypothesis
