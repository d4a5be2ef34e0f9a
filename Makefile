# Two commands do the whole set-up on a fresh machine:
#   make run    create .venv, install fmnist, get the data, train the tutorial's model
#   make test   the same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install data bench

run: install data
	$(BIN)/fmnist train

test: install
	@scripts/ensure-data.sh --optional
	$(BIN)/python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

data:
	@scripts/ensure-data.sh

bench: install data
	$(BIN)/python benchmarks/train_speed.py
