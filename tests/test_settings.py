"""Configuration: every bad value stops the start, naming the key and the value."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from gateway.errors import ConfigError
from gateway.settings import FIELDS, load_settings
from tests.support import BIN, base_env, free_port, port_open


def test_defaults_load() -> None:
    settings = load_settings({})
    assert settings.upstream_url == "http://127.0.0.1:8000"
    assert settings.store == "file:maintenance-state.json"
    assert settings.refresh_interval == 2
    assert settings.cors_allow_methods == ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")


def test_round_trip_through_the_environment() -> None:
    settings = load_settings({"GATEWAY_BYPASS_IPS": "10.0.0.0/8, 192.168.1.5", "GATEWAY_CORS_ALLOW_CREDENTIALS": "yes"})
    assert load_settings(settings.as_environment(masked=False)) == settings


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("GATEWAY_UPSTREAM_URL", "not a url", "only http://"),
        ("GATEWAY_UPSTREAM_URL", "http://127.0.0.1:99999", "not a URL"),
        ("GATEWAY_UPSTREAM_URL", "http://django:8000/app", "path"),
        ("GATEWAY_STORE", "s3://bucket/key", "unknown store"),
        ("GATEWAY_STORE", "file:", "needs a path"),
        ("GATEWAY_REFRESH_INTERVAL", "-1", "must be > 0"),
        ("GATEWAY_REFRESH_INTERVAL", "soon", "expected a float"),
        ("GATEWAY_REFRESH_INTERVAL", "nan", "finite"),
        ("GATEWAY_BYPASS_IPS", "10.0.0.0/33", "not an IP address or CIDR"),
        ("GATEWAY_FORWARDED_ALLOW_IPS", "localhost", "not an IP address or CIDR"),
        ("GATEWAY_CORS_ALLOWED_ORIGINS", "app.example.com", "missing scheme"),
        ("GATEWAY_CORS_ALLOWED_ORIGINS", "https://app.example.com/", "must not have a path"),
        ("GATEWAY_CORS_ALLOWED_ORIGIN_REGEXES", "^https://(a", "does not compile"),
        ("GATEWAY_CORS_ALLOW_CREDENTIALS", "maybe", "expected true/false"),
        ("GATEWAY_CORS_ALLOW_METHODS", "GET,PO ST", "not an HTTP token"),
        ("GATEWAY_FAIL_MODE", "sometimes", "expected one of: open, closed"),
        ("GATEWAY_PORT", "0", "must be >= 1"),
        ("GATEWAY_MAINTENANCE_PAGE", "/no/such/page.html", "no such file"),
        ("GATEWAY_BYPASS_PATHS", "webhooks", "does not start with /"),
        ("GATEWAY_UPSTREAM_URLL", "http://x", "unknown setting"),
    ],
)
def test_bad_values_are_refused_with_key_and_value(key: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({key: value})
    assert caught.value.key == key
    assert caught.value.value == value
    assert reason in caught.value.reason
    assert key in str(caught.value) and repr(value) in str(caught.value)


def test_allow_all_conflicts_with_a_list() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_CORS_ALLOW_ALL_ORIGINS": "true", "GATEWAY_CORS_ALLOWED_ORIGINS": "https://a.example"})
    assert caught.value.key == "GATEWAY_CORS_ALLOW_ALL_ORIGINS"


def test_flags_override_the_environment() -> None:
    settings = load_settings({"GATEWAY_PORT": "9000"}, overrides={"port": "9100"})
    assert settings.port == 9100
    with pytest.raises(ConfigError) as caught:
        load_settings({}, overrides={"refresh_interval": "0"})
    assert caught.value.key == "--refresh-interval"


def test_every_field_has_a_flag_and_a_variable() -> None:
    names = [field.env for field in FIELDS]
    assert len(names) == len(set(names))
    assert all(name.startswith("GATEWAY_") for name in names)


def test_bad_setting_stops_serve_before_binding() -> None:
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "serve", "--port", str(port)],
        env={**base_env(), "GATEWAY_BYPASS_IPS": "10.0.0.300"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78
    assert "GATEWAY_BYPASS_IPS='10.0.0.300'" in result.stderr
    assert not port_open(port)
    assert time.monotonic() - started < 10


def test_check_config_prints_the_effective_settings() -> None:
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "check-config", "--json", "--port", "9123"],
        env={**base_env(), "GATEWAY_CORS_ALLOWED_ORIGINS": "https://app.example"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["GATEWAY_PORT"] == "9123"
    assert shown["GATEWAY_CORS_ALLOWED_ORIGINS"] == "https://app.example"
    assert set(shown) == {field.env for field in FIELDS}


def test_check_config_fails_on_a_bad_value() -> None:
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "check-config"],
        env={**base_env(), "GATEWAY_FAIL_MODE": "sideways"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78
    assert "GATEWAY_FAIL_MODE='sideways'" in result.stderr


def test_readme_documents_every_setting() -> None:
    from tests.support import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [field.env for field in FIELDS if f"| `{field.env}` |" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
