# Followthrough: `make run` starts everything with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EHR := ehr-sandbox/node_modules/.installed
IDP := identity-sandbox/node_modules/.installed

.PHONY: run test lint format bench chaos clean web browser postgresql compose

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) $(EHR) web
	$(BIN)/followthrough dev

test: $(STAMP) $(EHR) $(IDP) web browser postgresql compose
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

# What breaks, in figures: cases driven through the API while the worker, Temporal, the EHR and
# an API process fail (`python -m bench.chaos --help`; `--soak MINUTES` for steady load).
chaos: $(STAMP) $(EHR)
	$(BIN)/python -m bench.chaos

# The care-team web UI: browser assets pinned in web/package-lock.json, copied into the static
# folder (not committed), and Debian's Chromium for the browser tests in tests/ui.
WEB_VENDOR := api/web/static/vendor

web: $(WEB_VENDOR)/.installed

$(WEB_VENDOR)/.installed: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(WEB_VENDOR)
	cp web/node_modules/htmx.org/dist/htmx.min.js web/node_modules/chart.js/dist/chart.umd.min.js $(WEB_VENDOR)/
	touch $@

browser:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# The app database's tests also run on a real PostgreSQL server (started by tests/postgres.py on
# a free loopback port, never as a system service): Debian's binaries, installed when missing.
postgresql:
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq postgresql)

# docker-compose.yml is checked by `docker-compose config`, which needs no container engine.
compose:
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)

# The EHR sandbox (a FHIR R4 engine for make run and the tests), pinned in its package-lock.json.
$(EHR): ehr-sandbox/package-lock.json
	npm ci --prefix ehr-sandbox --no-audit --no-fund --loglevel=error
	touch $@

# The OpenID Connect provider the browser tests sign in through (oidc-provider), pinned in its
# package-lock.json.
$(IDP): identity-sandbox/package-lock.json
	npm ci --prefix identity-sandbox --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf .data
