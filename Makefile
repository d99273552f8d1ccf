# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATA ?= .data/demo
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup demo test clean-demo

$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -e '.[test]'
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/dogsearch index samples/gallery --data-dir $(DEMO_DATA)
	@echo "dogsearch: http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	$(BIN)/dogsearch serve --data-dir $(DEMO_DATA) --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-demo:
	rm -rf $(DEMO_DATA)
