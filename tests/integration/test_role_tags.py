"""`--tags` selects what the roles' READMEs say: ansible-playbook --list-tasks, for real."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.harness.tools import tool

REPO = Path(__file__).parents[2]
# "      collector : Configure | Copy the BPF sources\tTAGS: [collector, collector_configure]"
TASK = re.compile(r"^\s+(?:(\w+) : )?(.+?)\tTAGS: \[(.*)\]$")


def listed(playbook: str, *args: str) -> list[tuple[str, str, set[str]]]:
    """(role or '', task name, tags) of every task the playbook would run."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    proc = subprocess.run(
        [tool("ansible-playbook"), f"playbooks/{playbook}",
         "--list-tasks", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = []
    for line in proc.stdout.splitlines():
        if (m := TASK.match(line)) and not line.lstrip().startswith("play #"):
            out.append((m[1] or "", m[2], {t.strip() for t in m[3].split(",") if t.strip()}))
    return out


def not_always(tasks):
    # Argument validation and the site's passwords (playbooks/tasks/secrets.yml) run
    # under any --tags: they are tagged always.
    return [t for t in tasks if "always" not in t[2]]


@pytest.mark.parametrize(("tag", "role", "prefixes"), [
    ("collector_configure", "collector", ("Preflight |", "Configure |")),
    ("collector_install", "collector", ("Preflight |", "Install |")),
    ("influxdb_service", "influxdb", ("Preflight |", "Service |")),
    ("grafana_configure", "grafana", ("Preflight |", "Provisioning |")),
])
def test_a_phase_tag_lists_only_that_phase_and_its_preflight(tag, role, prefixes):
    tasks = not_always(listed("site.yml", "--tags", tag))
    assert tasks, f"--tags {tag} selects nothing"
    wrong = [t for t in tasks if tag not in t[2] or t[0] not in (role, "common", "")]
    assert wrong == []
    phase = [name for r, name, tags in tasks if "preflight" not in tags and r == role]
    assert phase, f"--tags {tag} selects only preflight"
    assert [n for r, n, _ in tasks if r == role and not n.startswith(prefixes)] == []


def test_the_service_phase_brings_the_shared_init_script_tasks():
    tasks = not_always(listed("site.yml", "--tags", "collector_service"))
    assert {n for r, n, _ in tasks if r == "common"} == {
        "Init script | Write the init script", "Init script | Enable and start the service"}


def test_preflight_lists_only_checks_of_every_role():
    tasks = not_always(listed("site.yml", "--tags", "preflight"))
    assert {r for r, _, _ in tasks} == {"kernel_headers", "bcc", "collector", "influxdb",
                                        "grafana", "portal", "common"}
    assert [t for t in tasks if "preflight" not in t[2]] == []


def test_a_role_tag_lists_the_whole_role_and_nothing_else():
    tasks = not_always(listed("site.yml", "--tags", "bcc"))
    assert {r for r, _, _ in tasks} == {"bcc"}
    assert {n for _, n, _ in tasks} >= {"Install BCC and pyroute2",
                                        "Probe | Compile and load a tiny TC program"}


def test_remove_tags_select_one_role_s_removal():
    everything = not_always(listed("remove.yml"))
    # --list-tasks prints a looped include_role (the portal's daemons) without its role:
    # its <role>_remove tag says whose it is.
    roleless = [t for t in everything if not t[0]]
    assert all(any(tag.endswith("_remove") for tag in t[2]) for t in roleless), roleless
    roles = {r for r, _, _ in everything if r} | {
        tag.removesuffix("_remove") for _, _, tags in roleless for tag in tags
        if tag.endswith("_remove")}
    assert roles == {"collector", "influxdb", "grafana", "portal", "common"}
    only = not_always(listed("remove.yml", "--tags", "collector_remove"))
    assert only and all("collector_remove" in t[2] for t in only)
    assert {r for r, _, _ in only} == {"collector", "common"}
