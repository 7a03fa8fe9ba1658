"""Configuration: every bad value stops the start, naming the key and the value."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import typing
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import FIELDS, Field, Settings, load_settings
from tests.support import BIN, base_env, free_port, port_open

# Every setting whose value is a number, found from the types of ``Settings`` (not from the
# ranges), so that a new number setting declared without a range fails the tests below.
NUMBER_FIELDS = [field for field in FIELDS if typing.get_type_hints(Settings)[field.name] in (int, float)]


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
        ("GATEWAY_REFRESH_INTERVAL", "-1", "expected a number from 0.01 to 3600"),
        ("GATEWAY_REFRESH_INTERVAL", "1e-300", "expected a number from 0.01 to 3600"),
        ("GATEWAY_REFRESH_INTERVAL", "soon", "expected a number from 0.01"),
        ("GATEWAY_REFRESH_INTERVAL", "nan", "expected a number from 0.01"),
        ("GATEWAY_REFRESH_INTERVAL", "inf", "expected a number from 0.01"),
        ("GATEWAY_PORT", "99999", "expected a whole number from 1 to 65535"),
        ("GATEWAY_PORT", "80.5", "expected a whole number from 1 to 65535"),
        ("GATEWAY_BYPASS_IPS", "10.0.0.0/33", "not an IP address or CIDR"),
        ("GATEWAY_FORWARDED_ALLOW_IPS", "localhost", "not an IP address or CIDR"),
        ("GATEWAY_CORS_ALLOWED_ORIGINS", "app.example.com", "missing scheme"),
        ("GATEWAY_CORS_ALLOWED_ORIGINS", "https://app.example.com/", "must not have a path"),
        ("GATEWAY_CORS_ALLOWED_ORIGIN_REGEXES", "^https://(a", "does not compile"),
        ("GATEWAY_CORS_ALLOW_CREDENTIALS", "maybe", "expected true/false"),
        ("GATEWAY_CORS_ALLOW_METHODS", "GET,PO ST", "not an HTTP token"),
        ("GATEWAY_FAIL_MODE", "sometimes", "expected one of: open, closed"),
        ("GATEWAY_PORT", "0", "expected a whole number from 1 to 65535"),
        ("GATEWAY_MAINTENANCE_PAGE", "/no/such/page.html", "no such file"),
        ("GATEWAY_BYPASS_PATHS", "webhooks", "does not start with /"),
        ("GATEWAY_BYPASS_PATHS", "/webhooks/,/", "names the whole site"),
        ("GATEWAY_BYPASS_PATHS", "/webhooks/../admin", "'.' or '..' segment"),
        ("GATEWAY_ADMIN_PREFIX", "/a/../b", "without empty, '.' or '..' segments"),
        ("GATEWAY_ADMIN_PREFIX", "/a//b", "without empty, '.' or '..' segments"),
        # Bytes that are not UTF-8 in the environment arrive as lone surrogates.
        ("GATEWAY_MAINTENANCE_MESSAGE", "Back \udce9 soon", "not valid UTF-8"),
        ("GATEWAY_STORE", "file:/tmp/" + "a" * 300 + "/state.json", "cannot be checked"),
        ("GATEWAY_UPSTREAM_URLL", "http://x", "unknown setting; did you mean GATEWAY_UPSTREAM_URL?"),
        ("GATEWAY_REFRESH_INTERVALL", "5", "unknown setting; did you mean GATEWAY_REFRESH_INTERVAL?"),
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


def test_httptools_is_the_only_http_parser_and_h11_is_refused() -> None:
    # Task definitions written when there were two parsers still name the one they use.
    assert load_settings({}).http_parser == "httptools"
    assert load_settings({"GATEWAY_HTTP_PARSER": "httptools"}).http_parser == "httptools"
    assert load_settings({}, overrides={"http_parser": "httptools"}).http_parser == "httptools"
    for value in ("h11", "H11", " h11 "):
        with pytest.raises(ConfigError) as caught:
            load_settings({"GATEWAY_HTTP_PARSER": value})
        assert (caught.value.key, caught.value.value) == ("GATEWAY_HTTP_PARSER", value)
        assert caught.value.reason == "the h11 parser was removed; httptools is the only parser"
        assert str(caught.value) == f"GATEWAY_HTTP_PARSER={value!r}: the h11 parser was removed; httptools is the only parser"
    with pytest.raises(ConfigError) as caught:
        load_settings({}, overrides={"http_parser": "h11"})
    assert caught.value.key == "--http-parser" and "the h11 parser was removed" in caught.value.reason
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_HTTP_PARSER": "llhttp"})
    assert caught.value.reason == "expected one of: httptools"


def test_serve_with_the_h11_parser_stops_before_binding() -> None:
    port = free_port()
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "serve", "--port", str(port)],
        env={**base_env(), "GATEWAY_HTTP_PARSER": "h11"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78, result.stderr
    assert "GATEWAY_HTTP_PARSER='h11': the h11 parser was removed; httptools is the only parser" in result.stderr
    assert not port_open(port)


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


def test_check_config_shows_the_forwarded_hops_and_refuses_a_bad_count() -> None:
    def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "maintenance-gateway"), "check-config", "--json"],
            env={**base_env(), **env}, capture_output=True, text=True, timeout=30,
        )

    # 0 by default: the walk past GATEWAY_FORWARDED_ALLOW_IPS, as before the setting existed.
    assert json.loads(check_config({}).stdout)["GATEWAY_FORWARDED_HOPS"] == "0"
    shown = check_config({"GATEWAY_FORWARDED_HOPS": "2", "GATEWAY_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["GATEWAY_FORWARDED_HOPS"] == "2"
    for bad in ("-1", "17", "two"):
        refused = check_config({"GATEWAY_FORWARDED_HOPS": bad})
        assert refused.returncode == 78
        assert f"GATEWAY_FORWARDED_HOPS={bad!r}" in refused.stderr and "from 0 to 16" in refused.stderr


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


def test_each_setting_is_declared_once_on_its_settings_attribute() -> None:
    declared = {attribute.name: attribute.metadata.get("setting") for attribute in dataclasses.fields(Settings)}
    assert all(isinstance(declaration, Field) for declaration in declared.values()), declared
    assert [field.name for field in FIELDS] == list(declared)
    hints = typing.get_type_hints(Settings)
    defaults = load_settings({})
    for field in FIELDS:
        # The declared default parses to a value of the attribute's declared type.
        assert isinstance(getattr(defaults, field.name), typing.get_origin(hints[field.name]) or hints[field.name]), field.name


@pytest.mark.parametrize("field", NUMBER_FIELDS, ids=[field.env for field in NUMBER_FIELDS])
def test_every_number_setting_has_a_range_it_enforces(field: Field) -> None:
    low, high = field.bounds  # a number setting without a range has no bounds to unpack
    assert high < float("inf")
    whole = typing.get_type_hints(Settings)[field.name] is int
    for accepted in (low, high):
        text = str(int(accepted)) if whole else repr(float(accepted))
        assert getattr(load_settings({field.env: text}), field.name) == accepted
    # Just below the lowest: a whole number less, or half the way to zero (a hundredth below zero).
    below = low - 1 if whole else low - max(low / 2, 0.01)
    for refused in [below, high + 1, float("inf"), float("nan")]:
        text = str(int(refused)) if whole and refused == refused and abs(refused) != float("inf") else str(refused)
        with pytest.raises(ConfigError) as caught:
            load_settings({field.env: text})
        assert caught.value.key == field.env
        # The message names the range, so the operator need not look it up.
        assert _shown(high) in caught.value.reason and _shown(low) in caught.value.reason, caught.value.reason
    # The range is in the flag's help too.
    assert _shown(high) in field.help


def _shown(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def test_number_ranges_are_what_the_deployment_needs() -> None:
    by_env = {field.env: field for field in NUMBER_FIELDS}
    assert by_env["GATEWAY_PORT"].bounds == (1, 65535)
    for field in NUMBER_FIELDS:
        if "TIMEOUT" in field.env or "INTERVAL" in field.env:
            assert field.bounds[1] <= 86400, field.env  # finite, and below a day
    # The defaults of the shipped ECS stack fit.
    assert load_settings({"GATEWAY_UPSTREAM_READ_TIMEOUT": "50", "GATEWAY_UPSTREAM_IDLE_TIMEOUT": "4", "GATEWAY_DRAIN_TIMEOUT": "25"})


def test_port_out_of_range_stops_check_config() -> None:
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "check-config"],
        env={**base_env(), "GATEWAY_PORT": "99999"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78, result.stdout
    assert "GATEWAY_PORT='99999': expected a whole number from 1 to 65535" in result.stderr


def test_an_unknown_setting_names_the_one_it_was_meant_to_be() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_REFRESH_INTERVALL": "5"})
    assert str(caught.value) == "GATEWAY_REFRESH_INTERVALL='5': unknown setting; did you mean GATEWAY_REFRESH_INTERVAL?"
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_NOTHING_LIKE_IT": "x"})
    assert caught.value.reason == "unknown setting"
    # What a misspelt secret holds is never printed; nor is an unknown variable's value that may be one.
    for key in ("GATEWAY_BYPASS_SECRETS", "GATEWAY_ADMIN_TOKNS", "GATEWAY_DATABASE_PASSWORD"):
        with pytest.raises(ConfigError) as caught:
            load_settings({key: "hunter2-hunter2-hunter2"})
        assert "hunter2" not in str(caught.value), str(caught.value)
    assert "did you mean GATEWAY_BYPASS_SECRET?" in _refusal({"GATEWAY_BYPASS_SECRETS": "x"})


def _refusal(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    return str(caught.value)


def test_a_file_store_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "state.json"
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_STORE": f"file:{missing}"})
    assert caught.value.key == "GATEWAY_STORE"
    assert str(missing.parent) in caught.value.reason and "does not exist" in caught.value.reason
    with pytest.raises(ConfigError) as caught:
        load_settings({}, overrides={"store": f"file:{missing}"})
    assert caught.value.key == "--store"
    # A missing file in a directory that exists is the first start: accepted.
    assert load_settings({"GATEWAY_STORE": f"file:{tmp_path / 'state.json'}"}).store == f"file:{tmp_path / 'state.json'}"
    assert load_settings({"GATEWAY_STORE": "file:relative-state.json"})  # the current directory


@pytest.mark.parametrize("command", [["serve"], ["check-config"], ["status"], ["on", "--for", "5m"]])
def test_every_command_refuses_a_file_store_in_a_missing_directory(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "no-such-dir" / "state.json"
    port = free_port()
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), *command],
        env={**base_env(), "GATEWAY_STORE": f"file:{missing}", "GATEWAY_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 78, (result.stdout, result.stderr)
    assert f"GATEWAY_STORE='file:{missing}'" in result.stderr and "does not exist" in result.stderr
    assert not missing.parent.exists()  # nothing was created
    assert not port_open(port)


def test_status_of_a_new_file_store_in_an_existing_directory_says_there_is_no_such_item(tmp_path: Path) -> None:
    # A gateway reads it as the first start (off, version 0); the operator is told it is not there,
    # since a mistyped path reads the same.
    result = subprocess.run(
        [str(BIN / "maintenance-gateway"), "status"],
        env={**base_env(), "GATEWAY_STORE": f"file:{tmp_path / 'state.json'}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert f"no such item: file {tmp_path / 'state.json'}" in result.stderr and result.stdout == ""
