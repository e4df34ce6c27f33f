# LookSync: `make demo` runs the main job, `make test` runs the tests; both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup models services demo test lint clean es-test deploy-check

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# BlazePose's model files (sha256-checked) into ~/.cache/looksync/models: the default region finder, auto,
# reads looks from the body's keypoints only when they are there (else the fixed layout, said in `degraded`)
models: setup
	$(VENV)/bin/looksync models fetch

demo: setup
	$(VENV)/bin/looksync demo --workdir var/demo

# Redis, PostgreSQL and Chromium + chromedriver for the tests: started or installed when missing.
services:
	bash infra/dev/test-services.sh

test: setup services
	$(PY) -m pytest

# the Elasticsearch contract suite (tests/index, the `elasticsearch` parameter) against the compose cluster
# (infra/compose.yaml publishes it on 127.0.0.1:9200 and es-init registers the snapshot repository)
es-test: setup
	LOOKSYNC_ES_URL=$${LOOKSYNC_ES_URL:-http://127.0.0.1:9200} \
	LOOKSYNC_ES_SNAPSHOT_REPOSITORY=$${LOOKSYNC_ES_SNAPSHOT_REPOSITORY:-looksync-snapshots} \
	$(PY) -m pytest tests/index -k elasticsearch -rs

# the deployment's validation that needs no container engine (docs/deploy.md)
deploy-check: setup
	$(PY) -m pytest tests/infra -rs

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf var .pytest_cache
