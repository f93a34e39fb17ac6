# paycore: the two commands a newcomer needs are `make run` and `make test`.
# Both create .venv from the pinned requirements/dev.lock on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SRC := layers/paycore/paycore functions local_runtime bench tests docs
export PYTHONPATH := $(CURDIR)/layers/paycore:$(CURDIR)

# The browser suite (tests/browser) drives Debian's chromium through Playwright; CI is a
# fresh Debian machine where make runs as root. The CJK font makes the Chinese pages'
# screenshots readable.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test lint typecheck unit functional e2e infra browser bench coldstart chaos lock clean

$(STAMP): requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	touch $(STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		chromium fonts-wqy-microhei

run: $(STAMP)
	$(PY) -m local_runtime

test: lint typecheck $(CHROMIUM)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check $(SRC)
	$(PY) -m ruff format --check $(SRC)

typecheck: $(STAMP)
	$(PY) -m mypy

unit functional e2e infra: $(STAMP)
	$(PY) -m pytest tests/$@

browser: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest tests/browser

bench: $(STAMP)
	$(PY) -m bench

# Each function's INIT (its handler module imported in a fresh process, deployed environment)
# against a bare boto3 handler: medians and ratios.
coldstart: $(STAMP)
	$(PY) -m bench.coldstart

# Randomized concurrent journeys, then every money invariant (replay one: --seed <printed seed>).
chaos: $(STAMP)
	$(PY) -m bench.chaos --payments 200 --concurrency 8

# Re-pin every transitive dependency after editing requirements/dev.in.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements/dev.in
	.lock-venv/bin/pip freeze --exclude-editable > requirements/dev.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
