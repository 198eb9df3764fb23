# Development tasks for dartsrenet. `make test` is the command CI runs (.ci/run).
#
#   make setup   create .venv and install the project with its [all,test] extras, and
#                Graphviz and Fashion-MNIST where it can (see `graphviz` below)
#   make graphviz install Graphviz's `dot` (renders the cell drawings) if missing
#   make fashion-mnist install Debian's dataset-fashion-mnist (the study's data) if missing
#   make test    run the test suite (extra pytest options: make test PYTEST_ARGS="-k cells")
#   make demo    run the small end-to-end sweep demo (sweeps/demo.py)
#   make study   DARTS and 4 other search strategies against random cells on Fashion-MNIST, ~2.5 h on 2 cores (sweeps/study.py)
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

.PHONY: setup graphviz fashion-mnist test demo study bench clean

setup: $(STAMP)

# Reinstalls whenever pyproject.toml changes; otherwise `setup` is a no-op.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_PINS)
	$(PY) -m pip install -e ".[all,test]"
	@$(MAKE) --no-print-directory graphviz
	@$(MAKE) --no-print-directory fashion-mnist
	touch $@

# Graphviz's `dot` renders the cell drawings of analysis/draw_cells.py. It is optional:
# without it the drawings are written as DOT sources and `make demo` says how to render
# them. Installed non-interactively as root with apt-get or dnf; otherwise the command
# to run is printed. Never fails: a setup without Graphviz is still a working setup.
graphviz:
	@if command -v dot >/dev/null 2>&1; then \
	    echo "graphviz: $$(command -v dot) is installed"; \
	elif [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "graphviz: installing with apt-get"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; } \
	    || echo "note: apt-get could not install graphviz; cell drawings will be DOT sources until it is installed"; \
	elif [ "$$(id -u)" -eq 0 ] && command -v dnf >/dev/null 2>&1; then \
	    echo "graphviz: installing with dnf"; \
	    dnf install -y -q graphviz \
	    || echo "note: dnf could not install graphviz; cell drawings will be DOT sources until it is installed"; \
	elif command -v apt-get >/dev/null 2>&1; then \
	    echo "note: graphviz's dot is not installed (cell drawings will be DOT sources); install it with: sudo apt-get install graphviz"; \
	elif command -v dnf >/dev/null 2>&1; then \
	    echo "note: graphviz's dot is not installed (cell drawings will be DOT sources); install it with: sudo dnf install graphviz"; \
	elif command -v brew >/dev/null 2>&1; then \
	    echo "note: graphviz's dot is not installed (cell drawings will be DOT sources); install it with: brew install graphviz"; \
	else \
	    echo "note: graphviz's dot is not installed (cell drawings will be DOT sources); install Graphviz from https://graphviz.org/download/"; \
	fi

# Fashion-MNIST for `make study`, offline from Debian's package (its gzip IDX files in
# /usr/share/datasets/fashion-mnist; dartsrenet.data unpacks them into data/). Installed
# as root with apt-get where it can; otherwise says how. Never fails: only the study needs it.
FASHION_MNIST_DIR = /usr/share/datasets/fashion-mnist
fashion-mnist:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	    echo "fashion-mnist: $(FASHION_MNIST_DIR) is installed"; \
	elif [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "fashion-mnist: installing Debian's dataset-fashion-mnist with apt-get"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
	    || echo "note: apt-get could not install dataset-fashion-mnist; make study needs it"; \
	else \
	    echo "note: Fashion-MNIST is not installed (only make study needs it): sudo apt-get install dataset-fashion-mnist, or put the four unzipped IDX files into data/FashionMNIST/raw/"; \
	fi

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) sweeps/demo.py

study: setup
	$(PY) sweeps/study.py

bench: setup
	$(PY) benchmarks/bench_cells.py --quick

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
