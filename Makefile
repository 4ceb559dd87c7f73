# sessions lab — the commands a workshop types. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make install WHEELHOUSE=wheelhouse` installs offline from `make wheelhouse`'s folder.
WHEELHOUSE ?=
PIP_FROM := $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE),)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install demo up down compose test lint system-deps wheelhouse workshop-images lock clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)) and "Python 3.11 or 3.12 is needed; run make PYTHON=python3.11 …")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(PIP_FROM) -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(PIP_FROM) --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the locked dependencies (servers included)

demo: $(STAMP)  ## kill an instance under load in all eight modes (~5 min); prints the table and the report
	$(BIN)/sessions-lab experiment --modes all --scenario kill-one --users 20 --duration 30

MODE ?= sticky
up: $(STAMP)  ## start nginx + 3 instances on http://127.0.0.1:8080 to explore (MODE=sticky|redis|db|cached_db|cookie|jwt|memcached|replicated)
	$(BIN)/sessions-lab up --mode $(MODE) --instances 3

down: $(STAMP)  ## stop the lab started by `make up`
	$(BIN)/sessions-lab down

compose: $(STAMP)  ## render deploy/ for docker compose and write deploy/.env with fresh keys (MODE=… PORT=…)
	$(BIN)/sessions-lab render --target compose --mode $(MODE) $(if $(PORT),--port $(PORT))

test: $(STAMP) system-deps  ## run the whole test suite (installs chromium and wrk first if missing)
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff, the import rules of docs/architecture.md, hadolint
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .
	$(BIN)/hadolint deploy/Dockerfile

system-deps:  ## Debian/Ubuntu: memcached (memcached mode), chromium (report and dashboard tests), wrk (bench), Docker and mmdebstrap (compose test)
	@command -v memcached >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& command -v wrk >/dev/null && command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null \
		|| ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq memcached chromium chromium-driver wrk docker.io mmdebstrap)

wheelhouse:  ## every locked dependency in wheelhouse/, for laptops without internet
	$(PYTHON) -m pip download --quiet -d wheelhouse -r requirements/lock.txt
	$(PYTHON) -m pip download --quiet -d wheelhouse "setuptools>=69" wheel poetry-core

LAB_IMAGE  ?= sessions-lab:local
BASE_IMAGE ?= python:3.11-slim
workshop-images:  ## build the compose image (BASE_IMAGE=…; from wheelhouse/ if made) and save it to sessions-lab-images.tar
	docker build --file deploy/Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) --tag $(LAB_IMAGE) .
	docker save --output sessions-lab-images.tar $(LAB_IMAGE)

lock:  ## re-resolve requirements/lock.txt from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/lock.txt
	uv pip compile pyproject.toml --python-version 3.11 -c requirements/lock.txt -o requirements/runtime.txt

clean:  ## remove the run folder and caches (keeps .venv)
	rm -rf .lab .pytest_cache .ruff_cache .grimp_cache .import_linter_cache
