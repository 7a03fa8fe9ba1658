"""The maintenance-gateway-angular package itself, outside the browser: what it declares and
ships, that both apps use the built package and not its source, that it renders on the server
without a DOM, and that the README's steps are the minimal app's own code.

The browser checks of both apps are in tests/test_angular.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support import ROOT

ANGULAR_DIR = ROOT / "examples" / "angular"
KIT_DIR = ANGULAR_DIR / "kit"
LIBRARY = "maintenance-gateway-angular"
SOURCE = KIT_DIR / "projects" / LIBRARY
BUILT = KIT_DIR / "dist" / LIBRARY
MINIMAL = KIT_DIR / "projects" / "minimal"
# The oldest Angular the package supports: it is built with it, and the minimal app runs on it.
LOWEST_ANGULAR = "20.0.0"


@pytest.fixture(scope="module")
def built() -> Path:
    """`make test` has built it already; run on its own, the script builds it (or finds it up to date)."""
    subprocess.run([str(ROOT / "scripts" / "build-angular.sh")], check=True, timeout=600)
    return BUILT


def installed_version(node_modules: Path, package: str) -> str:
    return str(json.loads((node_modules / package / "package.json").read_text())["version"])


def tarball() -> Path:
    version = json.loads((SOURCE / "package.json").read_text())["version"]
    return KIT_DIR / "dist" / f"{LIBRARY}-{version}.tgz"


def test_the_package_declares_its_peers_from_the_lowest_angular_it_is_built_and_tested_with(built: Path) -> None:
    manifest = json.loads((built / "package.json").read_text())
    assert manifest["name"] == LIBRARY
    for peer in ("@angular/core", "@angular/common"):
        lowest = re.match(r"\^(\d+\.\d+\.\d+)", manifest["peerDependencies"][peer])
        assert lowest and lowest.group(1) == LOWEST_ANGULAR, manifest["peerDependencies"]
        # Built by ng-packagr with that Angular, and the minimal app runs on it.
        assert installed_version(KIT_DIR / "node_modules", peer) == LOWEST_ANGULAR
    assert installed_version(KIT_DIR / "node_modules", "@angular/compiler-cli") == LOWEST_ANGULAR
    assert installed_version(KIT_DIR / "node_modules", "ng-packagr") == LOWEST_ANGULAR
    # The shop runs on the newest major the range allows.
    shop_angular = installed_version(ANGULAR_DIR / "node_modules", "@angular/core")
    assert shop_angular.startswith("21."), shop_angular
    assert "^21.0.0" in manifest["peerDependencies"]["@angular/core"]
    # One entry point: partially compiled ES2022 (linked by the app's own compiler) and its types.
    assert manifest["exports"]["."] == {"types": "./index.d.ts", "default": f"./fesm2022/{LIBRARY}.mjs"}
    assert manifest["sideEffects"] is False
    bundle = (built / "fesm2022" / f"{LIBRARY}.mjs").read_text()
    assert "ɵɵngDeclareComponent" in bundle and f'version: "{LOWEST_ANGULAR}"' in bundle
    types = (built / "index.d.ts").read_text()
    for name in (
        "provideMaintenance", "maintenanceInterceptor", "MaintenanceInterceptor", "MAINTENANCE_INTERCEPTOR_PROVIDER",
        "MaintenanceOverlayComponent", "MaintenanceScopeComponent", "MaintenanceService", "MAINTENANCE_TEXTS",
        "MAINTENANCE_TEXTS_EN", "isMaintenanceError",
    ):
        assert re.search(rf"\b{name}\b", types), name


def test_the_tarball_holds_the_built_package_and_no_source(built: Path) -> None:
    with tarfile.open(tarball()) as packed:
        names = set(packed.getnames())
    assert {"package/package.json", "package/index.d.ts", f"package/fesm2022/{LIBRARY}.mjs"} <= names
    assert not [name for name in names if name.endswith(".ts") and not name.endswith(".d.ts")], names


def test_both_apps_use_the_built_package_not_its_source(built: Path) -> None:
    # The shop: a file: dependency on kit/dist, which npm links.
    shop_manifest = json.loads((ANGULAR_DIR / "package.json").read_text())
    assert shop_manifest["dependencies"][LIBRARY] == f"file:kit/dist/{LIBRARY}"
    linked = ANGULAR_DIR / "node_modules" / LIBRARY
    assert linked.is_symlink() and linked.resolve() == built.resolve()
    # The minimal app: the tarball, unpacked as `npm install TARBALL` unpacks it.
    installed = KIT_DIR / "node_modules" / LIBRARY
    assert not installed.is_symlink()
    with tarfile.open(tarball()) as packed:
        for member in packed.getmembers():
            if member.isfile():
                unpacked = installed / member.name.removeprefix("package/")
                extracted = packed.extractfile(member)
                assert extracted is not None and unpacked.read_bytes() == extracted.read(), member.name
    # Neither app reaches into the library's source: only the package name is imported.
    for app in (ANGULAR_DIR / "src", MINIMAL / "src"):
        for source in app.rglob("*.ts"):
            text = source.read_text()
            assert "projects/maintenance-gateway-angular" not in text and "/lib/" not in text, source
            if "maintenance" in text.lower():
                assert not re.search(r"from '\.\.?/[^']*maintenance", text), source


def test_the_library_renders_on_the_server_without_touching_browser_globals(built: Path) -> None:
    """Node, no DOM: every browser global watched from before the import (kit/check-server-rendering.mjs)."""
    result = subprocess.run(["node", "check-server-rendering.mjs"], cwd=KIT_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "standalone: rendered on the server, with and without maintenance" in result.stdout
    assert "NgModule: rendered on the server, with and without maintenance" in result.stdout
    assert "no browser global touched and no timer started by the library" in result.stdout


def readme_kit_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## The Angular kit")
    return readme[start : readme.index("\n## ", start + 1)]


def code_blocks(text: str, language: str) -> list[str]:
    return [re.sub(r"(?m)^   ", "", block) for block in re.findall(rf"```{language}\n(.*?)```", text, re.S)]


def test_the_readmes_drop_in_steps_are_the_minimal_apps_code() -> None:
    """The NgModule steps of "Drop it into your app in 15 minutes", line for line in the minimal app
    (built and shown in Chromium by tests/test_angular.py), and the standalone ones in the shop."""
    section = readme_kit_section()
    assert "Drop it into your app in 15 minutes" in section
    module = (MINIMAL / "src" / "app" / "app.module.ts").read_text()
    shop_config = (ANGULAR_DIR / "src" / "app" / "app.config.ts").read_text()
    blocks = code_blocks(section, "ts")
    ngmodule = next(block for block in blocks if "MAINTENANCE_INTERCEPTOR_PROVIDER" in block and "@NgModule" in block)
    standalone = next(block for block in blocks if "withInterceptors([maintenanceInterceptor" in block)
    for line in ngmodule.splitlines():
        if line.strip() and not line.strip().startswith(("//", "...")) and "statusUrl" not in line:
            assert line.strip() in module, line
    for line in ("import { maintenanceInterceptor, provideMaintenance } from 'maintenance-gateway-angular';",):
        assert line in standalone and line in shop_config
    install = code_blocks(section, "sh")
    assert any(f"npm install" in block and f"{LIBRARY}-" in block and ".tgz" in block for block in install), install
