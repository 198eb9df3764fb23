# Development tasks for dartsrenet. `make test` is the command CI runs (.ci/run).
#
#   make setup   create .venv and install the project with its [all,test] extras
#   make test    run the test suite (extra pytest options: make test PYTEST_ARGS="-k cells")
#   make demo    run the small end-to-end sweep demo (sweeps/demo.py)
#   make bench   quick speed benchmark of the recurrent cells
#   make clean   remove build artefacts and caches (keeps .venv, results/ and data/)

PYTHON ?= python3
VENV = .venv
PY = $(VENV)/bin/python
# torch/torchvision pins known to install and work together on the development
# and CI machines (there, an older CPU-only torch wheel breaks PyPI's torchvision
# with "torchvision::nms does not exist"). pyproject.toml only gives ranges;
# elsewhere override, e.g. make setup TORCH_PINS="torch torchvision".
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# OpenMP threads that spin while waiting stall badly when other jobs share the
# cores (measured: 2-15 s instead of 0.2-0.5 s per search step); sleep instead.
export OMP_WAIT_POLICY ?= PASSIVE

STAMP = $(VENV)/.installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

# Reinstalls whenever pyproject.toml changes; otherwise `setup` is a no-op.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install -e ".[all,test]"
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) sweeps/demo.py

bench: setup
	$(PY) benchmarks/bench_cells.py --quick

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
