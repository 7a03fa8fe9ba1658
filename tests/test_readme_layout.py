"""The README's layout names every module of the package where it is, and nothing that is gone."""

from __future__ import annotations

import re

from tests.support import ROOT


def layout_paths() -> set[str]:
    """The paths the layout block names, each with the folders it is indented under."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("\n## Layout\n", 1)[1].split("```", 2)[1]
    folders: list[tuple[int, str]] = []  # (indent, folder) of the entries above
    named = set()
    for line in block.splitlines():
        match = re.match(r"( *)([\w.]+/?)", line)
        if match is None:
            continue
        indent, name = len(match.group(1)), match.group(2)
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = "".join(folder for _, folder in folders) + name
        named.add(path)
        if name.endswith("/"):
            folders.append((indent, name))
    return named


def test_the_layout_names_every_module_where_it_is() -> None:
    named = layout_paths()
    modules = {
        str(path.relative_to(ROOT)) + ("/" if path.is_dir() else "")
        for path in (ROOT / "gateway").rglob("*")
        if "__pycache__" not in path.parts
        and path.name not in ("__init__.py", "__main__.py", "py.typed")
        and path.parent.name != "templates"
    }
    assert modules - named == set(), "modules the README's layout does not name"
    listed_in_package = {path for path in named if path.startswith("gateway/") and path != "gateway/"}
    assert listed_in_package - modules == set(), "the layout names modules that are not there"
