"""`./run rollout`: what it passes to rollout, verify and status, and that a failed rollout
stops it. The script's own rollout() runs under its own `set` line, with `sitevis` and
the set-up (which would install packages) replaced by shell functions that log calls."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]


def rollout_function() -> tuple[str, str]:
    script = (REPO / "run").read_text()
    options = re.search(r"^set -[a-z]+ \w+$", script, re.M)
    body = re.search(r"^rollout\(\) \{\n.*?^\}\n", script, re.M | re.S)
    assert options and body, "./run lost its set line or its rollout() function"
    return options[0], body[0]


def run_rollout(tmp_path: Path, *args: str, rollout_rc: int = 0) -> tuple[int, list[str]]:
    """rollout() with args; the sitevis commands it ran, one line each."""
    set_line, function = rollout_function()
    log = tmp_path / "calls"
    stubs = (f'setup() {{ :; }}\nsay() {{ :; }}\n'
             f'sitevis() {{ echo "$*" >>"{log}"; [ "$1" != rollout ] || return {rollout_rc}; }}\n')
    proc = subprocess.run(["bash", "-c", f'{set_line}\n{stubs}{function}rollout "$@"', "run",
                           *args], capture_output=True, text=True, timeout=30)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc.returncode, calls


@pytest.mark.parametrize("args, scope", [
    ((), ""),
    (("-i", "inventory/example", "--limit", "box1"), "-i inventory/example --limit box1"),
    (("-i", "inventory/example", "-l", "box1,box2"), "-i inventory/example --limit box1,box2"),
    (("--inventory=inventory/example", "--limit=box*"), "-i inventory/example --limit box*"),
    (("-iinventory/example", "-lbox1", "--tags", "collector"),
     "-i inventory/example --limit box1"),
])
def test_inventory_and_limit_reach_verify_and_status(tmp_path: Path, args: tuple[str, ...],
                                                     scope: str):
    rc, calls = run_rollout(tmp_path, *args)
    assert rc == 0
    assert calls == [" ".join(("rollout", *args)), f"verify {scope}".strip(),
                     f"status {scope}".strip()]


def test_a_failed_rollout_stops_before_verify_and_status(tmp_path: Path):
    rc, calls = run_rollout(tmp_path, "--limit", "nosuchhost", rollout_rc=2)
    assert rc == 2
    assert calls == ["rollout --limit nosuchhost"]


def test_check_mode_stops_after_the_rollout(tmp_path: Path):
    rc, calls = run_rollout(tmp_path, "--check", "-l", "box1")
    assert (rc, calls) == (0, ["rollout --check -l box1"])


def test_usage_names_the_options_rollout_takes():
    proc = subprocess.run([str(REPO / "run")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "./run rollout [-i INVENTORY] [-l|--limit HOSTS]" in proc.stderr
