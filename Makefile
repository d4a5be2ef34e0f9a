# Two commands do the whole set-up on a fresh machine:
#   make run    create .venv, install fmnist, get the data, train the tutorial's model
#   make test   the same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

VENV_TF := .venv-tf

.PHONY: run test install data bench tensorflow test-tensorflow

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

# The tutorial's own backend, in its own environment (TensorFlow is large, and its presence slows
# Keras's model saving in the main one).
tensorflow: $(VENV_TF)/.installed

$(VENV_TF)/.installed: pyproject.toml
	test -x $(VENV_TF)/bin/python || $(PYTHON) -m venv $(VENV_TF)
	$(VENV_TF)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TF)/bin/python -m pip install --quiet -e '.[test,tensorflow]'
	touch $@

test-tensorflow: tensorflow
	KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 $(VENV_TF)/bin/python -m pytest -m tensorflow
