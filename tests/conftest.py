"""The servers most tests share: one raw upstream, the example Django app, and a gateway in
front of each, started once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import AWS_ENV, CORS_ENV, FRONT_ORIGIN, Gateway, maintenance_off_after, start_django, start_raw_upstream

# The browser fixtures (browser, front_pages, page_dirs) live beside the browser helpers.
pytest_plugins = ["tests.browser"]

# In-process boto3 clients (the tests' own store handles) talk to moto with these.
os.environ.update(AWS_ENV)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def raw_upstream(log_dir: Path) -> Iterator[str]:
    server, url = start_raw_upstream(log_dir)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def django_upstream(log_dir: Path) -> Iterator[str]:
    server, url = start_django(log_dir, FRONT_ORIGIN)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def raw_gateway_server(log_dir: Path, raw_upstream: str) -> Iterator[Gateway]:
    gateway = Gateway(
        log_dir,
        raw_upstream,
        {**CORS_ENV, "GATEWAY_UPSTREAM_READ_TIMEOUT": "2", "GATEWAY_BYPASS_PATHS": "/webhooks/"},
        name="gateway-raw",
    )
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def django_gateway_server(log_dir: Path, django_upstream: str) -> Iterator[Gateway]:
    gateway = Gateway(log_dir, django_upstream, CORS_ENV, name="gateway-django")
    yield gateway
    gateway.stop()


@pytest.fixture
def raw_gateway(raw_gateway_server: Gateway) -> Iterator[Gateway]:
    """The gateway in front of the raw ASGI upstream, maintenance off at the start and the end."""
    yield from maintenance_off_after(raw_gateway_server)


@pytest.fixture
def django_gateway(django_gateway_server: Gateway) -> Iterator[Gateway]:
    """The gateway in front of the example Django app under gunicorn."""
    yield from maintenance_off_after(django_gateway_server)

