"""Every role follows the project's conventions (DESIGN.md, "Conventions")."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).parents[2] / "roles").iterdir() if p.is_dir())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def test_there_are_roles():
    assert {r.name for r in ROLES} >= {"kernel_headers", "bcc"}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_argument_specs_keys_equal_defaults_keys(role: Path):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_public_variables_are_role_prefixed(role: Path):
    defaults = load(role / "defaults" / "main.yml")
    assert [k for k in defaults if not k.startswith(f"{role.name}_")] == []


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_role_has_readme_preflight_and_handlers(role: Path):
    for part in ("README.md", "tasks/preflight.yml", "handlers/main.yml", "meta/main.yml"):
        assert (role / part).is_file(), part


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_default_is_documented_in_the_readme(role: Path):
    readme = (role / "README.md").read_text()
    missing = [k for k in load(role / "defaults" / "main.yml") if f"`{k}`" not in readme]
    assert missing == []
