"""One version for the project: the controller's and the collector's __version__ agree,
both pyprojects read it from there, and CHANGELOG.md has an entry for it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).parents[2]
SOURCES = {
    "pyproject.toml": ("sitevis", REPO / "sitevis" / "__init__.py"),
    "collector/pyproject.toml": ("sitevis_collector",
                                 REPO / "collector" / "src" / "sitevis_collector" / "__init__.py"),
}


def declared_version(init: Path) -> str:
    """The literal assigned to __version__ (what setuptools' attr: reads without importing)."""
    for node in ast.parse(init.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "__version__"):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return node.value.value
    raise AssertionError(f"{init} defines no __version__")


def test_controller_and_collector_versions_agree():
    versions = {name: declared_version(init) for name, (_, init) in SOURCES.items()}
    assert len(set(versions.values())) == 1, versions
    assert re.fullmatch(r"\d+\.\d+\.\d+", next(iter(versions.values())))


def test_pyprojects_read_the_version_from_their_package():
    for name, (package, _) in SOURCES.items():
        pyproject = tomllib.loads((REPO / name).read_text())
        assert "version" not in pyproject["project"], f"{name}: a second version source"
        assert "version" in pyproject["project"]["dynamic"], name
        dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
        assert dynamic == {"attr": f"{package}.__version__"}, name


def test_license_is_an_spdx_expression_with_its_text():
    for name in SOURCES:
        assert tomllib.loads((REPO / name).read_text())["project"]["license"] == "Apache-2.0"
    assert (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_changelog_names_the_version():
    version = declared_version(SOURCES["pyproject.toml"][1])
    assert version in (REPO / "CHANGELOG.md").read_text()
