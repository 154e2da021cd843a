"""Every role follows the project's conventions (DESIGN.md, "Conventions")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
ALL_ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())
# A role with tasks/main.yml is applied by playbooks; one without (common) is private:
# only its entry points are called, with tasks_from.
ROLES = [r for r in ALL_ROLES if (r / "tasks" / "main.yml").is_file()]
PRIVATE = [r for r in ALL_ROLES if r not in ROLES]
# Entry points of a public role besides main, each with its argument spec.
EXTRA_ENTRY_POINTS = ("remove",)
PHASES = ("install", "configure", "service", "remove")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def argument_specs(role: Path) -> dict:
    return load(role / "meta" / "argument_specs.yml")["argument_specs"]


def entry_points(role: Path) -> list[str]:
    if role in PRIVATE:
        return sorted(p.stem for p in (role / "tasks").glob("*.yml"))
    return ["main"] + [e for e in EXTRA_ENTRY_POINTS if (role / "tasks" / f"{e}.yml").is_file()]


def test_there_are_roles():
    assert {r.name for r in ROLES} >= {"kernel_headers", "bcc", "collector", "influxdb", "grafana"}
    assert [r.name for r in PRIVATE] == ["common"]


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
def test_every_entry_point_has_an_argument_spec(role: Path):
    assert sorted(argument_specs(role)) == sorted(entry_points(role))


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_argument_specs_keys_equal_defaults_keys(role: Path):
    defaults = load(role / "defaults" / "main.yml")
    options = {k for spec in argument_specs(role).values() for k in spec["options"]}
    assert options == set(defaults)
    assert set(argument_specs(role)["main"]["options"]) <= set(defaults)


@pytest.mark.parametrize("role", PRIVATE, ids=lambda r: r.name)
def test_private_role_defaults_are_optional_parameters(role: Path):
    specs = argument_specs(role)
    optional = {k: o["default"] for spec in specs.values()
                for k, o in spec["options"].items() if not o.get("required")}
    assert load(role / "defaults" / "main.yml") == optional


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
def test_public_variables_are_role_prefixed(role: Path):
    defaults = load(role / "defaults" / "main.yml")
    options = {k for spec in argument_specs(role).values() for k in spec["options"]}
    assert [k for k in {*defaults, *options} if not k.startswith(f"{role.name}_")] == []


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_role_has_readme_preflight_and_handlers(role: Path):
    for part in ("README.md", "tasks/preflight.yml", "handlers/main.yml", "meta/main.yml"):
        assert (role / part).is_file(), part


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
def test_every_default_is_documented_in_the_readme(role: Path):
    readme = (role / "README.md").read_text()
    options = {k for spec in argument_specs(role).values() for k in spec["options"]}
    missing = [k for k in sorted(options) if f"`{k}`" not in readme]
    assert missing == []


# --- tags ----------------------------------------------------------------------------
# Every task carries, itself or through what imports it, the role's tag and one phase:
# <role>_install|_configure|_service|_remove, or preflight (which also carries every
# phase of the role, so that a phase never runs without its checks). Tags of an
# include_tasks reach the included tasks only through `apply`.

def _tags(task: dict) -> set[str]:
    tags = task.get("tags", [])
    return {tags} if isinstance(tags, str) else set(tags)


def _tasks_file(role: Path, name: str) -> Path:
    return role / "tasks" / (name if name.endswith(".yml") else f"{name}.yml")


def walk(role: Path, path: Path, inherited: frozenset[str]) -> Iterator[tuple[Path, str, set]]:
    """(file, task name, effective tags) of every task reached from path."""
    for task in yaml.safe_load(path.read_text()) or []:
        yield from _walk_task(role, path, task, inherited)


def _walk_task(role: Path, path: Path, task: dict, inherited: frozenset[str]):
    tags = inherited | _tags(task)
    if "block" in task:
        for key in ("block", "rescue", "always"):
            for child in task.get(key, []):
                yield from _walk_task(role, path, child, tags)
        return
    yield path, task.get("name", "?"), set(tags)
    for module in ("ansible.builtin.import_tasks", "ansible.builtin.include_tasks"):
        if module in task:
            arg = task[module]
            target = arg if isinstance(arg, str) else arg["file"]
            child = tags if module.endswith("import_tasks") else (
                inherited | _tags(arg.get("apply", {}) if isinstance(arg, dict) else {}))
            yield from walk(role, _tasks_file(role, target), frozenset(child))
    for module in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
        if module in task:
            other = ROOT / "roles" / task[module]["name"]
            target = _tasks_file(other, task[module].get("tasks_from", "main"))
            child = tags if module.endswith("import_role") else inherited
            yield from walk(other, target, frozenset(child))


def reached(role: Path) -> list[tuple[Path, str, set]]:
    return [t for entry in entry_points(role) for t in walk(role, _tasks_file(role, entry),
                                                              frozenset())]


def phase_tags(role: Path) -> set[str]:
    return {f"{role.name}_{p}" for p in PHASES}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_task_carries_the_role_tag_and_one_phase(role: Path):
    untagged = []
    for path, name, tags in reached(role):
        phases = tags & phase_tags(role)
        if role.name not in tags or not phases or (len(phases) > 1 and "preflight" not in tags):
            untagged.append(f"{path.relative_to(ROOT)}: {name} {sorted(tags)}")
    assert untagged == []


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_preflight_runs_with_every_phase_of_the_role(role: Path):
    tasks = reached(role)
    main_phases = {p for _, _, tags in tasks for p in tags & phase_tags(role)} - {
        f"{role.name}_remove"}
    assert main_phases, "the role has no phase"
    wrong = [name for _, name, tags in tasks
             if "preflight" in tags and tags & phase_tags(role) != main_phases]
    assert wrong == []


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda r: r.name)
def test_every_tasks_file_is_reached_from_an_entry_point(role: Path):
    callers = ROLES if role in PRIVATE else [role]
    files = {path for caller in callers for path, _, _ in reached(caller)}
    assert sorted(p.name for p in (role / "tasks").glob("*.yml") if p not in files) == []


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_the_readme_documents_the_role_tags(role: Path):
    readme = (role / "README.md").read_text()
    used = {t for _, _, tags in reached(role) for t in tags}
    assert "## Tags" in readme
    assert [t for t in sorted(used) if f"`{t}`" not in readme] == []
