# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test typecheck system-deps clean

# The virtual environment, re-installed whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: the gateway on :8080 in front of the example Django app on :8000 (file store)
run: $(STAMP)
	scripts/run-example.sh

## test: install what the tests need (Python packages, Chromium) and run them all
test: $(STAMP) system-deps
	$(BIN)/mypy
	$(BIN)/python -m pytest

typecheck: $(STAMP)
	$(BIN)/mypy

system-deps:
	scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache *.egg-info
