# SaferMap. `make demo` and `make test` install whatever is missing first; every step is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PG_MAJOR ?= 15
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SAFERMAP := $(BIN)/safermap
HOST ?= 127.0.0.1
PORT ?= 8000
# One uvicorn worker per core (each sizes its database pool to its share of max_connections).
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
# Debian packages: the database server with PostGIS and pgRouting, Chromium for page tests and
# print exports, GDAL's command-line tools (ogrinfo, ogr2ogr: the export tests open every export
# with them, and the exports bench compares with ogr2ogr). npm (for the front-end libraries) is
# installed from Debian only when no npm is on the PATH: a Node.js from elsewhere brings its own,
# and Debian's would conflict with it.
APT_PACKAGES := postgresql-$(PG_MAJOR) postgresql-$(PG_MAJOR)-postgis-3 postgresql-$(PG_MAJOR)-pgrouting \
	chromium fonts-dejavu-core gdal-bin python3-qgis

.PHONY: help install system-deps python-deps vendor vendor-copy db-up db-down demo serve lint typecheck test bench bench-deps clean

help:
	@echo "make demo   - install, start the database, load the demo data and serve http://$(HOST):$(PORT)"
	@echo "make test   - install and run the whole test suite against a real PostGIS"
	@echo "make serve  - serve the app (WORKERS=N for more processes)"
	@echo "make bench  - benchmarks (bench/), ratios measured side by side"

install: system-deps python-deps vendor

system-deps:
	@if command -v dpkg >/dev/null 2>&1; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	      echo "Installing Debian packages:" $$missing; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	    else echo "Missing Debian packages (install them as root):" $$missing; exit 1; fi; \
	  fi; \
	else echo "Not Debian: make sure PostgreSQL with PostGIS and pgRouting, Chromium, GDAL's tools (ogrinfo) and npm are installed."; fi

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

vendor: static/vendor/.installed

static/vendor/.installed: package.json
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	$(MAKE) --no-print-directory vendor-copy
	@touch $@

# Copies what the pages load from node_modules into static/vendor/ (served at /static/vendor).
vendor-copy:
	rm -rf static/vendor && mkdir -p static/vendor
	cp -r node_modules/leaflet/dist static/vendor/leaflet
	cp node_modules/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js static/vendor/
	mkdir -p static/vendor/swagger-ui
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css static/vendor/swagger-ui/

db-up: install
	$(SAFERMAP) db up

db-down:
	$(SAFERMAP) db down

demo: db-up
	$(SAFERMAP) demo --host $(HOST) --port $(PORT)
	$(SAFERMAP) serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

serve: db-up
	$(SAFERMAP) serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# Gates that run before pytest: lint (ruff: errors, import order, old syntax) over app/, tests/ and bench/,
# and types (mypy over app/, configured in pyproject.toml). Either failing stops `make test`.
lint: python-deps
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy

typecheck: python-deps
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest -q

# wrk (Debian) drives the HTTP lines of the tile bench; only the bench needs it.
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian package: wrk"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; \
	  else echo "The bench needs wrk (Debian: apt-get install wrk)"; exit 1; fi; }

bench: db-up bench-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules static/vendor
