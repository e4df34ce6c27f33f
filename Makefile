# LookSync: `make demo` runs the main job, `make test` runs the tests; both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup services demo test lint clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/looksync demo --workdir var/demo

# Redis, PostgreSQL and Chromium + chromedriver for the tests: started or installed when missing.
services:
	bash infra/dev/test-services.sh

test: setup services
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf var .pytest_cache
