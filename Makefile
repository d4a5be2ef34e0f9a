# Two commands do the whole set-up on a fresh machine:
#   make run    create .venv, install fmnist, get the data, train the tutorial's model
#   make test   the same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

VENV_TF := .venv-tf

.PHONY: run test install data browser bench bench-serve tensorflow test-tensorflow

run: install data
	$(BIN)/fmnist train

test: install browser
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

# Headless Chromium and its driver from Debian, for the browser tests (tests/browser.py). Installed with
# apt when we are root or have password-less sudo; otherwise those tests are skipped and say why.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || { sudo -n true 2>/dev/null && sudo="sudo -n"; }; \
	if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" -eq 0 ] || [ -n "$$sudo" ]; }; then \
		echo "installing Debian's chromium and chromium-driver (apt-get) for the browser tests…"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null || true; \
	fi; \
	[ -x /usr/bin/chromedriver ] || echo "chromium-driver is not installed: the browser tests will be skipped" \
		"(sudo apt-get install chromium chromium-driver)" >&2

bench: install data
	$(BIN)/python benchmarks/train_speed.py

# fmnist predict start-up and fmnist serve under load, .keras against .onnx (loopback only, under a minute);
# trains RUN first if it holds no model.
RUN ?= runs/tutorial
bench-serve: install data
	test -f $(RUN)/model.keras || $(BIN)/fmnist train --output-dir $(RUN) --quiet
	$(BIN)/python benchmarks/serve_load.py $(RUN)

# The tutorial's own backend, in its own environment (TensorFlow is large, and its presence slows
# Keras's model saving in the main one).
tensorflow: $(VENV_TF)/.installed

$(VENV_TF)/.installed: pyproject.toml
	test -x $(VENV_TF)/bin/python || $(PYTHON) -m venv $(VENV_TF)
	$(VENV_TF)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TF)/bin/python -m pip install --quiet -e '.[test,tensorflow]'
	touch $@

test-tensorflow: tensorflow
	KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 $(VENV_TF)/bin/python -m pytest -m tensorflow -n 0  # three tests: workers would cost more than they save
