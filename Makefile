# `make run` and `make test` set everything up on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
# torch build: auto (keep an installed one; else CUDA where nvidia-smi lists a GPU, else CPU), cpu, cuda
TORCH  ?= auto
# pytest-xdist workers for `make test` (auto: one per CPU core)
TEST_WORKERS ?= auto
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.PHONY: install install-dev run test bench gpu-check clean

# the app's runtime requirements only (what `make run` needs)
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHON=$(PY) ./bin/install-torch $(TORCH)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# the test tools on top (ray, pytest, playwright, hadolint, ruff: what `make test` needs)
$(DEV): $(STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(DEV)

install: $(STAMP)
ifneq ($(TORCH),auto)
	PYTHON=$(PY) ./bin/install-torch $(TORCH)
endif

install-dev: install $(DEV)

run: install
	PYTHON=$(PY) PORT=$(PORT) ./bin/serve

test: install-dev
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=10

bench: install-dev
	for b in benchmarks/[!_]*.py; do $(PY) $$b || exit 1; done

# on a GPU machine: the GPU tests and the CUDA benchmarks, logs in reports/gpu
gpu-check: install-dev
	PYTHON=$(PY) ./bin/gpu-check

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
