"""The README's layout names every module of the package, so a newcomer can find each one."""

from __future__ import annotations

import re

from tests.support import ROOT


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def test_the_layout_names_every_module_and_subpackage() -> None:
    block = layout_block()
    named = set(re.findall(r"^\s*([\w./]+)", block, re.M))
    missing = []
    for path in sorted((ROOT / "gateway").rglob("*")):
        if "__pycache__" in path.parts or path.name in ("__init__.py", "__main__.py", "py.typed"):
            continue
        if path.is_dir():
            if path.name + "/" not in named and path.parent.name != "templates":
                missing.append(str(path.relative_to(ROOT)) + "/")
        elif path.suffix in (".py", ".json") and path.name not in named:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"the README's layout does not name: {missing}"
