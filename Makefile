# The two commands a newcomer needs: `make demo` and `make test`.
# Both set up everything themselves (system packages, a virtualenv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SHELL_SOURCES := bin/detect bin/compile bin/release bin/build bin/start-traffic-duplicator $(wildcard lib/*.sh) .ci/run $(wildcard scripts/*.sh) $(wildcard tests/fixtures/bin/*)

.PHONY: all test lint typecheck shellcheck pytest demo bench bench-syscalls bench-calls bench-venv system-packages bench-packages venv clean

all: test

system-packages:
	@scripts/ensure-packages.sh shellcheck=shellcheck wrk=wrk curl=curl zstd=zstd

bench-packages: system-packages
	@scripts/ensure-packages.sh nginx=nginx-light strace=strace

# The benchmarks' own virtualenv: the `bench` extra (matplotlib for the chart, uvloop at
# the version the buildpack installs), so one interpreter runs the proxy on both loops.
BENCH_VENV := .bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -e '.[bench]'
	@touch $@

bench-venv: $(BENCH_STAMP)

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

bench: bench-packages $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/proxy.py --python $(CURDIR)/$(BENCH_VENV)/bin/python --chart bench/proxy.png
	$(BENCH_VENV)/bin/python bench/replay.py

bench-syscalls: bench-packages $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/syscalls.py --python $(CURDIR)/$(BENCH_VENV)/bin/python --loop asyncio
	$(BENCH_VENV)/bin/python bench/syscalls.py --python $(CURDIR)/$(BENCH_VENV)/bin/python
	$(BENCH_VENV)/bin/python bench/syscalls.py --proxy nginx-mirror

bench-calls: bench-packages $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/calls.py --python $(CURDIR)/$(BENCH_VENV)/bin/python
	$(BENCH_VENV)/bin/python bench/calls.py --python $(CURDIR)/$(BENCH_VENV)/bin/python --keep-alive --connections 1

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
