"""django-maintenance-gateway (django-maintenance-gateway/) in process, under Django's test client:
the notice read defensively, the banner in the reader's language and time zone, the CORS check and
``gateway_cors_env`` (checked against the gateway's own settings parser), and ``manage.py
maintenance`` against a real gateway. The app under gunicorn behind the gateway is in
test_example_django.py; the distribution in a fresh environment in test_packaging.py."""

from __future__ import annotations

import io
import json
import re
import shlex
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from django.conf import settings

if not settings.configured:
    # This module is the test project: its settings here, its URLs below (ROOT_URLCONF).
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only",
        # Django leaves the process's logging as it is: other tests read it.
        LOGGING_CONFIG=None,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "corsheaders", "maintenance_gateway_django"],
        MIDDLEWARE=["maintenance_gateway_django.middleware.MaintenanceNoticeMiddleware"],
        DATABASES={},
        USE_TZ=True,
        TIME_ZONE="UTC",
        LANGUAGE_CODE="en",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "maintenance_gateway_django.context_processors.maintenance",
                    ],
                    "loaders": [
                        (
                            "django.template.loaders.locmem.Loader",
                            {"page.html": "{% load maintenance_gateway %}<main>{% maintenance_banner %}</main>"},
                        ),
                        "django.template.loaders.app_directories.Loader",
                    ],
                },
            }
        ],
    )
    import django

    django.setup()

from django.core.checks import run_checks  # noqa: E402 - needs the settings above
from django.core.management import call_command  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils import timezone as django_timezone  # noqa: E402
from django.utils import translation  # noqa: E402

from gateway.cors import CorsPolicy  # noqa: E402
from gateway.settings import load_settings  # noqa: E402
from maintenance_gateway_django.admin_client import EXIT_AUTH, EXIT_CONFIG, EXIT_CONFLICT, EXIT_UNREACHABLE, EXIT_USAGE  # noqa: E402
from maintenance_gateway_django.cors import from_django  # noqa: E402
from maintenance_gateway_django.notice import MaintenanceNotice, parse_notice  # noqa: E402
from tests.support import SUPPORT_ADMIN_TOKEN, Gateway, free_port  # noqa: E402

UTC = timezone.utc


def _seen(request: HttpRequest) -> JsonResponse:
    notice = request.maintenance  # type: ignore[attr-defined]
    if notice is None:
        return JsonResponse({"maintenance": None})
    return JsonResponse(
        {
            "mode": notice.mode,
            "message": notice.message,
            "scope": notice.scope,
            "upcoming": notice.upcoming,
            "starts_at": notice.starts_at.isoformat() if notice.starts_at else None,
            "ends_at": notice.ends_at.isoformat() if notice.ends_at else None,
        }
    )


async def _seen_async(request: HttpRequest) -> JsonResponse:
    return _seen(request)


def _page(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html")


urlpatterns = [path("seen", _seen), path("seen-async", _seen_async), path("page", _page)]

NOTICE = {
    "mode": "read-only",
    "scope": ["/api/checkout/"],
    "starts_at": "2026-11-26T22:00:00Z",
    "ends_at": "2026-11-26T23:00:00.250Z",
    "upcoming": True,
    "message": "Checkout <b>pauses</b>\ntonight",
}


def header(notice: object) -> str:
    return json.dumps(notice, separators=(",", ":"))


def page(notice: object | None = None, **extra: str) -> str:
    headers = {"HTTP_X_MAINTENANCE_NOTICE": header(notice)} if notice is not None else {}
    response = Client().get("/page", **headers, **extra)
    assert response.status_code == 200
    return response.content.decode()


# -- the notice


def test_request_maintenance_is_the_notice_the_gateway_sent() -> None:
    seen = Client().get("/seen", HTTP_X_MAINTENANCE_NOTICE=header(NOTICE)).json()
    assert seen == {
        "mode": "read-only",
        "message": "Checkout <b>pauses</b>\ntonight",
        "scope": ["/api/checkout/"],
        "upcoming": True,
        "starts_at": "2026-11-26T22:00:00+00:00",
        "ends_at": "2026-11-26T23:00:00.250000+00:00",
    }
    assert Client().get("/seen").json() == {"maintenance": None}
    notice = parse_notice(header(NOTICE))
    assert notice is not None and notice.ends_at is not None and notice.ends_at.tzinfo is not None
    assert notice.read_only and notice.partial and not notice.active
    assert notice.covers("/api/checkout") and notice.covers("/api/checkout/pay") and not notice.covers("/api/checkoutx")


def test_the_async_middleware_sets_it_too() -> None:
    import asyncio

    async def fetch() -> Any:
        return await AsyncClient().get("/seen-async", headers={"X-Maintenance-Notice": header({"mode": "full", "upcoming": True, "starts_at": "2026-11-26T22:00:00Z"})})

    response = asyncio.run(fetch())
    assert response.json()["mode"] == "full" and response.json()["upcoming"] is True


HOSTILE = {
    "not JSON": "{mode: full",
    "not an object": '["read-only"]',
    "null": "null",
    "no mode": header({"upcoming": False}),
    "unknown mode": header({"mode": "partial"}),
    "mode not text": header({"mode": ["full"]}),
    "upcoming not a bool": header({"mode": "full", "upcoming": "yes"}),
    "message not text": header({"mode": "full", "message": 42}),
    "message too long": header({"mode": "full", "message": "x" * 2001}),
    # ASCII on the wire, a lone surrogate once decoded: no page can encode it.
    "message with a lone surrogate": '{"mode":"read-only","message":"\\ud800"}',
    "message with NUL": '{"mode":"read-only","message":"a\\u0000b"}',
    "prefix with a control character": '{"mode":"full","scope":["/api/\\u001b[2J/"]}',
    "scope not a list": header({"mode": "full", "scope": "/api/"}),
    "scope empty": header({"mode": "full", "scope": []}),
    "scope of numbers": header({"mode": "full", "scope": [1]}),
    "scope too long": header({"mode": "full", "scope": [f"/p{n}/" for n in range(17)]}),
    "prefix too long": header({"mode": "full", "scope": ["/" + "p" * 200]}),
    "prefix not a path": header({"mode": "full", "scope": ["api/"]}),
    "time not text": header({"mode": "full", "ends_at": 1764194400}),
    "time not a time": header({"mode": "full", "ends_at": "tomorrow"}),
    "time without a zone": header({"mode": "full", "ends_at": "2026-11-26T23:00:00"}),
    "time too long": header({"mode": "full", "ends_at": "2026-11-26T23:00:00" + "0" * 100 + "Z"}),
    "time before year 1 in UTC": header({"mode": "full", "ends_at": "0001-01-01T00:00:00+01:00"}),
    "huge value": header({"mode": "full", "message": "x", "pad": "y" * 9000}),
    "deeply nested": "[" * 5000 + "]" * 5000,
    "nested in an object": '{"mode":"full","scope":' + "[" * 3000 + "]" * 3000 + "}",
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_anything_but_a_notice_reads_as_none_and_never_fails_the_request(value: str) -> None:
    assert parse_notice(value) is None
    client = Client()
    assert client.get("/seen", HTTP_X_MAINTENANCE_NOTICE=value).json() == {"maintenance": None}
    assert "maintenance-banner" not in client.get("/page", HTTP_X_MAINTENANCE_NOTICE=value).content.decode()


def test_unknown_keys_are_ignored_so_a_newer_gateway_can_add_some() -> None:
    notice = parse_notice(header({"mode": "full", "scope": ["/api/"], "upcoming": False, "added_later": {"x": 1}}))
    assert notice == MaintenanceNotice(mode="full", scope=("/api/",))


# -- the banner


def test_the_banner_says_what_and_when_and_the_operators_message_escaped() -> None:
    html = page(NOTICE)
    assert 'class="maintenance-banner maintenance-banner--read-only maintenance-banner--upcoming" role="status"' in html
    assert (
        "Scheduled read-only maintenance of <code>/api/checkout/</code> from "
        '<time datetime="2026-11-26T22:00:00Z">Nov. 26, 2026, 10 p.m. UTC</time> to '
        '<time datetime="2026-11-26T23:00:00.250000Z">Nov. 26, 2026, 11 p.m. UTC</time>.'
    ) in html
    assert "Checkout &lt;b&gt;pauses&lt;/b&gt;<br>tonight" in html
    assert "maintenance-banner" not in page()


@pytest.mark.parametrize(
    ("language", "zone", "start", "end"),
    [
        ("de", "Europe/Berlin", "26. November 2026 23:00 CET", "27. November 2026 00:00 CET"),
        ("fr", "America/New_York", "26 novembre 2026 17:00 EST", "26 novembre 2026 18:00 EST"),
        ("en-gb", "Asia/Tokyo", "27 Nov 2026, 7 a.m. JST", "27 Nov 2026, 8 a.m. JST"),
    ],
)
def test_times_are_in_the_active_language_and_time_zone(language: str, zone: str, start: str, end: str) -> None:
    with translation.override(language), django_timezone.override(zone):
        html = page(NOTICE)
    assert f'<time datetime="2026-11-26T22:00:00Z">{start}</time>' in html
    assert f'<time datetime="2026-11-26T23:00:00.250000Z">{end}</time>' in html


WINDOWS = [
    ({"mode": "full", "upcoming": True, "starts_at": "2026-11-26T22:00:00Z"}, "Scheduled maintenance from <time"),
    ({"mode": "read-only", "upcoming": False, "ends_at": "2026-11-26T23:00:00Z"}, "The site is read-only until <time"),
    ({"mode": "read-only", "upcoming": False}, "The site is read-only: changes cannot be saved right now."),
    (
        {"mode": "full", "upcoming": False, "scope": ["/api/checkout/", "/api/pay/"]},
        "Part of the site (<code>/api/checkout/</code>, <code>/api/pay/</code>) is down for maintenance.",
    ),
    (
        {"mode": "read-only", "upcoming": False, "scope": ["/a/<script>/"], "ends_at": "2026-11-26T23:00:00Z"},
        "Part of the site (<code>/a/&lt;script&gt;/</code>) is read-only until <time",
    ),
    # Not a notice the gateway sends (it sends none in full maintenance of the whole site), said all the same.
    ({"mode": "full", "upcoming": False}, "The site is down for maintenance."),
]


@pytest.mark.parametrize(("notice", "said"), WINDOWS)
def test_each_kind_of_window_has_its_sentence(notice: dict[str, Any], said: str) -> None:
    assert said in page(notice)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_times_at_the_edges_of_the_calendar_render_in_any_zone(moment: str) -> None:
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        with django_timezone.override(zone):
            html = page({"mode": "read-only", "ends_at": moment})
        assert f'<time datetime="{moment}">' in html


def test_the_tag_takes_a_notice_and_the_filter_formats_a_time() -> None:
    from django.template import Context, Template

    notice = MaintenanceNotice(mode="read-only", ends_at=datetime(2026, 11, 26, 23, 0, tzinfo=UTC))
    rendered = Template("{% load maintenance_gateway %}{% maintenance_banner notice %}|{{ notice.ends_at|maintenance_time }}").render(
        Context({"notice": notice})
    )
    assert "The site is read-only until" in rendered
    assert rendered.endswith('|<time datetime="2026-11-26T23:00:00Z">Nov. 26, 2026, 11 p.m. UTC</time>')
    assert Template("{% load maintenance_gateway %}[{% maintenance_banner %}]").render(Context({})).strip() == "[]"


# -- the CORS check and gateway_cors_env

DJANGO_CORS = {
    "CORS_ALLOWED_ORIGINS": ["https://app.example.com", "http://localhost:4200"],
    "CORS_ALLOWED_ORIGIN_REGEXES": [r"^https://\w+\.example\.com$", re.compile(r"^https://preview-[a-z0-9-]+\.example\.net$", re.I)],
    "CORS_ALLOW_CREDENTIALS": True,
    "CORS_ALLOW_HEADERS": ("accept", "authorization", "content-type", "user-agent", "x-csrftoken", "x-requested-with", "x-client-version"),
    "CORS_EXPOSE_HEADERS": ["Retry-After", "X-Maintenance-Mode", "X-Total-Count"],
    "CORS_PREFLIGHT_MAX_AGE": 3600,
}


def cors_env(fmt: str = "env", **settings_: Any) -> str:
    out = io.StringIO()
    with override_settings(**{**DJANGO_CORS, **settings_}):
        call_command("gateway_cors_env", "--format", fmt, stdout=out)
    return out.getvalue()


def env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def drift_ids(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, **settings_: Any) -> list[str]:
    for name in [name for name in __import__("os").environ if name.startswith("GATEWAY_CORS_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with override_settings(**{**DJANGO_CORS, **settings_}):
        return [message.id for message in run_checks(tags=["maintenance_gateway"])]


def test_the_env_lines_are_taken_by_the_gateway_and_answer_as_django_does() -> None:
    lines = env_lines(cors_env())
    assert lines == {
        "GATEWAY_CORS_ALLOWED_ORIGINS": "https://app.example.com,http://localhost:4200",
        "GATEWAY_CORS_ALLOWED_ORIGIN_REGEXES": r"^https://\w+\.example\.com$,(?i)^https://preview-[a-z0-9-]+\.example\.net$",
        "GATEWAY_CORS_ALLOW_ALL_ORIGINS": "false",
        "GATEWAY_CORS_ALLOW_CREDENTIALS": "true",
        "GATEWAY_CORS_ALLOW_METHODS": "DELETE,GET,OPTIONS,PATCH,POST,PUT",
        "GATEWAY_CORS_ALLOW_HEADERS": "accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with,x-client-version",
        "GATEWAY_CORS_EXPOSE_HEADERS": "Retry-After,X-Maintenance-Mode,X-Total-Count",
        "GATEWAY_CORS_PREFLIGHT_MAX_AGE": "3600",
    }
    # The gateway's own parser takes them, and its policy decides as django-cors-headers does.
    policy = CorsPolicy(load_settings(lines))
    for origin, allowed in [
        (b"https://app.example.com", True),
        (b"https://shop.example.com", True),
        (b"https://PREVIEW-42.example.net", True),  # the compiled pattern's IGNORECASE, written inline
        (b"https://evil.example.org", False),
    ]:
        assert (policy.allow_origin_value(origin) == origin) is allowed, origin
    preflight = dict(policy.preflight_headers(b"http://localhost:4200") or [])
    assert b"x-client-version" in preflight[b"access-control-allow-headers"]
    assert preflight[b"access-control-max-age"] == b"3600"


def test_shell_and_json_formats_say_the_same() -> None:
    lines = env_lines(cors_env())
    exported = {}
    for line in cors_env("shell").splitlines():
        name, value = shlex.split(line.removeprefix("export "))[0].split("=", 1)
        exported[name] = value
    assert exported == lines
    assert {item["name"]: item["value"] for item in json.loads(cors_env("json"))} == lines


def test_allow_all_drops_the_lists_the_gateway_would_refuse_beside_it() -> None:
    lines = env_lines(cors_env(CORS_ALLOW_ALL_ORIGINS=True, CORS_ALLOW_CREDENTIALS=False))
    assert lines["GATEWAY_CORS_ALLOW_ALL_ORIGINS"] == "true" and lines["GATEWAY_CORS_ALLOWED_ORIGINS"] == ""
    assert CorsPolicy(load_settings(lines)).allow_origin_value(b"https://any.example") == b"*"


def test_a_value_a_variable_cannot_hold_is_an_error_naming_the_setting() -> None:
    with pytest.raises(CommandError, match=r"CORS_ALLOWED_ORIGIN_REGEXES: .*holds a comma") as refused:
        cors_env(CORS_ALLOWED_ORIGIN_REGEXES=[r"^https://[a-z]{1,3}\.example\.com$"])
    assert refused.value.returncode == 2


def test_the_check_is_quiet_when_the_gateway_says_what_django_says(monkeypatch: pytest.MonkeyPatch) -> None:
    assert drift_ids(env_lines(cors_env()), monkeypatch) == []
    # Nothing known of the gateway: nothing to compare, nothing said.
    assert drift_ids({}, monkeypatch) == []


def test_the_check_names_each_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = env_lines(cors_env())
    # The drift of the issue: a header Django allows that the gateway's preflights do not.
    assert drift_ids({**lines, "GATEWAY_CORS_ALLOW_HEADERS": "accept,content-type"}, monkeypatch) == ["maintenance_gateway.W006"]
    everything = {
        "GATEWAY_CORS_ALLOWED_ORIGINS": "https://app.example.com",
        "GATEWAY_CORS_ALLOWED_ORIGIN_REGEXES": "",
        "GATEWAY_CORS_ALLOW_CREDENTIALS": "no",
        "GATEWAY_CORS_ALLOW_METHODS": "GET",
        "GATEWAY_CORS_EXPOSE_HEADERS": "",
    }
    assert drift_ids(everything, monkeypatch) == [f"maintenance_gateway.W00{n}" for n in (1, 2, 4, 5, 6, 7, 8)]
    assert drift_ids({"GATEWAY_CORS_ALLOW_ALL_ORIGINS": "true"}, monkeypatch) == [
        f"maintenance_gateway.W00{n}" for n in (3, 4, 6, 7, 8)
    ]


def test_the_check_reads_gateway_settings_from_django_settings_before_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = env_lines(cors_env())
    headers = "accept,content-type"
    ids = drift_ids(lines, monkeypatch, GATEWAY_CORS_ALLOW_HEADERS=headers.split(","))
    assert ids == ["maintenance_gateway.W006"]
    with override_settings(**DJANGO_CORS, GATEWAY_CORS_ALLOW_HEADERS=headers):
        (message,) = run_checks(tags=["maintenance_gateway"])
    assert "allows request headers that the gateway (GATEWAY_CORS_ALLOW_HEADERS) does not: authorization, user-agent" in message.msg
    assert '"cannot reach the server"' in message.msg and "gateway_cors_env" in (message.hint or "")


def test_a_gateway_value_the_gateway_would_refuse_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert drift_ids({"GATEWAY_CORS_ALLOW_CREDENTIALS": "maybe"}, monkeypatch) == ["maintenance_gateway.E001"]
    assert drift_ids({"GATEWAY_CORS_PREFLIGHT_MAX_AGE": "172800"}, monkeypatch) == ["maintenance_gateway.E001"]
    both = {"GATEWAY_CORS_ALLOW_ALL_ORIGINS": "true", "GATEWAY_CORS_ALLOWED_ORIGINS": "https://app.example.com"}
    assert drift_ids(both, monkeypatch) == ["maintenance_gateway.E001"]


def test_django_settings_are_read_as_django_cors_headers_reads_them() -> None:
    from corsheaders.conf import conf

    with override_settings(CORS_ORIGIN_WHITELIST=["https://old.example"], CORS_ORIGIN_ALLOW_ALL=False, CORS_ALLOW_METHODS=["GET", "POST"]):
        ours = from_django(settings)
        assert ours.allowed_origins == tuple(conf.CORS_ALLOWED_ORIGINS)
        assert ours.allow_methods == tuple(conf.CORS_ALLOW_METHODS)
        assert ours.allow_headers == tuple(conf.CORS_ALLOW_HEADERS)
        assert ours.preflight_max_age == conf.CORS_PREFLIGHT_MAX_AGE
        assert ours.allow_all_origins is conf.CORS_ALLOW_ALL_ORIGINS


# -- manage.py maintenance, against a real gateway


def maintenance(*args: str, url: str | None, token: str | None = SUPPORT_ADMIN_TOKEN) -> str:
    out = io.StringIO()
    with override_settings(MAINTENANCE_GATEWAY_URL=url, MAINTENANCE_GATEWAY_TOKEN=token):
        call_command("maintenance", *args, stdout=out)
    return out.getvalue()


def refused(*args: str, url: str | None, token: str | None = SUPPORT_ADMIN_TOKEN) -> CommandError:
    with pytest.raises(CommandError) as failure:
        maintenance(*args, url=url, token=token)
    return failure.value


@pytest.fixture
def gateway(raw_gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    monkeypatch.delenv("GATEWAY_ADMIN_URL", raising=False)
    monkeypatch.delenv("GATEWAY_ADMIN_TOKEN", raising=False)
    yield raw_gateway


def test_maintenance_on_status_off_through_the_admin_api(gateway: Gateway) -> None:
    said = maintenance("on", "--message", "Back at 10:00", "--for", "30m", "--mode", "read-only", "--paths", "/echo/checkout/", "--reason", "release 42", url=gateway.url)
    assert "maintenance: on (read-only)" in said and "message:     Back at 10:00" in said and "paths:       /echo/checkout/" in said
    state = gateway.store.read()
    assert state.enabled and state.mode == "read-only" and state.scope == ("/echo/checkout/",) and state.reason == "release 42"
    assert state.ends_at is not None and 1790 < state.ends_at - time.time() <= 1800
    assert "via admin API" in state.updated_by
    shown = json.loads(maintenance("status", "--json", url=gateway.url))
    assert shown["version"] == state.version and shown["message"] == "Back at 10:00"
    assert "maintenance: off" in maintenance("off", "--reason", "done", url=gateway.url)
    assert not gateway.store.read().enabled
    assert "already off" in maintenance("off", url=gateway.url)


def test_a_scheduled_window_and_if_match(gateway: Gateway) -> None:
    said = maintenance("on", "--from", "+1h", "--until", "+2h", url=gateway.url)
    assert "maintenance: upcoming (full)" in said
    version = gateway.store.read().version
    stale = refused("off", "--if-match", str(version - 1), url=gateway.url)
    assert stale.returncode == EXIT_CONFLICT and "HTTP 412" in str(stale)
    assert gateway.store.read().enabled
    assert "maintenance: off" in maintenance("off", "--if-match", f'"{version}"', url=gateway.url)


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("on", "--paths", "/echo/../admin/"), EXIT_USAGE, "the gateway refused (scope)"),
        (("on", "--until", "2001-01-01T00:00:00Z"), EXIT_USAGE, "the gateway refused (ends_at)"),
    ],
)
def test_a_refused_value_exits_2_naming_the_field(gateway: Gateway, args: tuple[str, ...], code: int, said: str) -> None:
    failure = refused(*args, url=gateway.url)
    assert failure.returncode == code and said in str(failure)
    assert not gateway.store.read().enabled


def test_bad_arguments_are_refused_before_anything_is_sent(gateway: Gateway) -> None:
    version = gateway.store.read().version
    for args in (("on", "--for", "soon"), ("on", "--until", "tomorrow"), ("on", "--for", "1h", "--until", "+2h"), ("nap",)):
        with pytest.raises(CommandError):
            maintenance(*args, url=gateway.url)
    assert gateway.store.read().version == version


def test_failures_have_the_gateway_clis_exit_codes(gateway: Gateway, raw_upstream: str) -> None:
    wrong = refused("status", url=gateway.url, token="not-the-token-0123456789")
    assert wrong.returncode == EXIT_AUTH and "HTTP 401" in str(wrong) and "not-the-token" not in str(wrong)
    closed = refused("status", url=f"http://127.0.0.1:{free_port()}")
    assert closed.returncode == EXIT_UNREACHABLE and "cannot reach the gateway" in str(closed)
    # Another server at the URL (here the gateway's upstream) is not taken for the gateway.
    elsewhere = refused("status", url=raw_upstream)
    assert elsewhere.returncode == EXIT_UNREACHABLE and "no maintenance-gateway admin API" in str(elsewhere)
    nothing = refused("status", url=None)
    assert nothing.returncode == EXIT_CONFIG and "MAINTENANCE_GATEWAY_URL" in str(nothing)
    no_token = refused("status", url=gateway.url, token=None)
    assert no_token.returncode == EXIT_CONFIG and "MAINTENANCE_GATEWAY_TOKEN" in str(no_token)
    not_a_url = refused("status", url="127.0.0.1:8080")
    assert not_a_url.returncode == EXIT_CONFIG and "not a gateway URL" in str(not_a_url)


def test_the_environment_names_the_gateway_when_the_settings_do_not(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_URL", gateway.url)
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", SUPPORT_ADMIN_TOKEN + "\n")
    assert "maintenance: off" in maintenance("status", url=None, token=None)
