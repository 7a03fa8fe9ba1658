"""Distributions built as a user's ``python -m build`` builds them, installed into fresh
virtual environments that share nothing with the tests' own (no system site-packages, no pip
of their own: the tests' pip installs into them with ``--python``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

# Building an sdist and its wheel, or a venv's dependencies from the package index, on 2 shared cores.
BUILD_TIMEOUT = 180

_LEFT_BEHIND = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")


def build_distribution(source: Path, paths: Sequence[str], work: Path) -> tuple[Path, Path]:
    """The sdist of ``source`` (only ``paths`` of it, copied, so the checkout gets no build
    output), and the wheel ``build`` makes from that sdist: (sdist, wheel)."""
    tree = work / "source"
    tree.mkdir(parents=True)
    for name in paths:
        origin = source / name
        if origin.is_dir():
            shutil.copytree(origin, tree / name, ignore=_LEFT_BEHIND)
        else:
            shutil.copy2(origin, tree / name)
    out = work / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)])
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def fresh_venv(where: Path, requirements: Sequence[str], constraints: Path | None = None) -> Path:
    """A new virtual environment with ``requirements`` (and their dependencies) installed;
    returns its ``bin`` directory."""
    run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    python = where / "bin" / "python"
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    run([*command, *requirements])
    return where / "bin"


def installed(bin_dir: Path) -> set[str]:
    """The names of the distributions in the environment, lower-cased with dashes."""
    script = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    # -I: neither the current directory (a checkout's *.egg-info) nor PYTHONPATH counts.
    names = json.loads(run([str(bin_dir / "python"), "-I", "-c", script]).stdout)
    return {name.lower().replace("_", "-") for name in names}


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [item for item in archive.namelist() if item.endswith(".dist-info/METADATA")]
        return archive.read(name).decode()


def sdist_files(sdist: Path) -> set[str]:
    """The sdist's paths without its top folder (``name-version/``)."""
    with tarfile.open(sdist) as archive:
        return {member.name.split("/", 1)[1] for member in archive.getmembers() if "/" in member.name}


def run(args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``args`` run to the end; a failure raises with what the command said."""
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=BUILD_TIMEOUT, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
