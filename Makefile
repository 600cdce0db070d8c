# Followthrough: `make run` starts everything with demo data; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EHR := ehr-sandbox/node_modules/.installed

.PHONY: run test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) $(EHR)
	$(BIN)/followthrough dev

test: $(STAMP) $(EHR)
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

# The EHR sandbox (a FHIR R4 engine for make run and the tests), pinned in its package-lock.json.
$(EHR): ehr-sandbox/package-lock.json
	npm ci --prefix ehr-sandbox --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf .data
