# The one task runner, used the same way locally and in CI.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_SRC := $(wildcard protos/switchyard/v1/*.proto)

.PHONY: all run test lint typecheck pytest protos check-protos bench clean up

all: test

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

## Regenerate the committed Python code and mypy stubs from protos/.
protos: $(STAMP)
	$(PY) -m scripts.gen_protos

## Fail when regenerating the protos would change the committed code.
check-protos: $(STAMP)
	$(PY) -m scripts.gen_protos --check

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy common services switchyard scripts bench
	$(VENV)/bin/mypy --config-file tests/mypy.ini tests

pytest: $(STAMP)
	$(PY) -m pytest -q

test: check-protos lint typecheck pytest

## Start the whole mesh, run a multi-tenant demo workload, print what happened.
run: $(STAMP)
	$(PY) -m switchyard.demo

## Start the mesh and keep it running until Ctrl-C.
up: $(STAMP)
	$(VENV)/bin/switchyard up

## Benchmarks (reports in bench/reports/); BENCH=name runs one. Installs the bench extra.
bench: $(STAMP)
	$(PY) -m pip install -q "matplotlib==3.11.2" "ray==2.60.0" "celery==5.7.0" "redis==8.1.0"
	$(PY) -m bench.run $(BENCH)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .switchyard

## On a lent GPU machine, with its own python3 (docs/gpu.md): measure the GPU worker and
## write bench/reports/gpu.md, first installing what that python3 lacks from wheels/ if carried.
## Without a GPU it fails. DEVICE=cpu measures the same on this machine's CPU with the
## project's venv and writes bench/reports/gpu_cpu.md, headed as CPU figures.
.PHONY: gpu-check
ifeq ($(DEVICE),cpu)
gpu-check: $(STAMP)
	$(PY) -m bench.gpu_check --device cpu $(GPU_CHECK_ARGS)
else
gpu-check:
	bash bench/gpu_bootstrap.sh $(if $(DEVICE),--device $(DEVICE)) $(GPU_CHECK_ARGS)
endif
