# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-smoke soak typecheck angular clean

# The virtual environment, re-installed whenever the dependencies change. The runtime
# dependencies are held to requirements.lock, the versions the image ships. The example
# Django site uses django-maintenance-gateway (Django's side, its own distribution) from
# this checkout.
$(STAMP): pyproject.toml requirements.lock django-maintenance-gateway/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,bench]' -e ./django-maintenance-gateway
	touch $(STAMP)

## run: the gateway on :8080 in front of the example Django app on :8000 (HTTP) and :8001 (WebSockets), file store;
## GATEWAY_PORT, EXAMPLE_DJANGO_PORT and EXAMPLE_ASGI_PORT move them (a port in use stops it with a message)
run: $(STAMP)
	scripts/run-example.sh

## test: install what the tests need (Python packages, Chromium, the Angular kit's npm build) and run them all
test: $(STAMP)
	scripts/install-system-deps.sh chromium nginx-light wrk curl gettext-base
	scripts/build-angular.sh
	$(BIN)/mypy
	$(BIN)/python -m pytest

## bench: the gateway side by side with nginx, asgiproxy and fastapi-proxy-lib (about 10 minutes)
bench: $(STAMP)
	scripts/install-system-deps.sh nginx-light wrk
	$(BIN)/python -m bench.run

bench-smoke: $(STAMP)
	scripts/install-system-deps.sh nginx-light wrk
	$(BIN)/python -m bench.run --smoke

## soak: 10 minutes of mixed traffic through the gateway, maintenance switched every 30 s
soak: $(STAMP)
	$(BIN)/python -m bench.soak

## angular: npm ci and build examples/angular (skipped when the build is newer than its sources)
angular:
	scripts/build-angular.sh

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache *.egg-info
