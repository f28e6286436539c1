# `make demo` and `make test` set everything up from nothing (a venv in .venv) first.
VENV ?= .venv
BIN := $(VENV)/bin
PIP_TORCH := torch==2.13.0

.PHONY: setup demo test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' $(PIP_TORCH)
	touch $@

demo: setup
	$(BIN)/instructmix run configs/demo.yaml

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/pool_throughput.py
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf runs bench/results
