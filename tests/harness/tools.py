"""The project's programs as the running interpreter's environment has them.

A test runs `sitevis`, `sitevis-collector` or `ansible-playbook` from the environment
pytest runs in: the script beside sys.executable (a venv's bin/, wherever the venv is,
without it being activated), else the one on PATH. A missing one skips the test naming
the package that provides it (in CI, where nothing may skip, that fails the run).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# Program -> what installs it (pyproject.toml and collector/pyproject.toml).
PROVIDERS = {
    "sitevis": "the sitevis package (pip install -e .)",
    "sitevis-collector": "the sitevis-collector package (pip install -e ./collector)",
    "ansible": "ansible-core (pip install -e .)",
    "ansible-playbook": "ansible-core (pip install -e .)",
    "ansible-runner": "ansible-runner (pip install -e .)",
    "molecule": "molecule (pip install -e '.[dev]')",
}


def find_tool(name: str) -> str | None:
    """The absolute path of program `name` in this interpreter's environment, or None."""
    # Not resolved: a venv's python is a symlink, and its scripts sit beside the link.
    beside = Path(sys.executable).parent / name
    if beside.is_file() and shutil.which(str(beside)):
        return str(beside)
    found = shutil.which(name)
    return str(Path(found).absolute()) if found else None


def tool(name: str) -> str:
    """find_tool(name), or skip the test naming the package that provides it."""
    found = find_tool(name)
    if found is None:
        provider = PROVIDERS.get(name, f"the package that provides {name}")
        pytest.skip(f"{name} not found beside {sys.executable} nor on PATH: "
                    f"install {provider} into the environment pytest runs in")
    return found


def host_processes(pattern: str) -> list[str]:
    """`pgrep -af pattern` limited to this machine's own PID and mount namespaces: the
    services of Molecule's containers (same command lines) are not this machine's."""
    import os
    import subprocess

    out = subprocess.run(["pgrep", "--ns", str(os.getpid()), "--nslist", "pid,mnt",
                          "-af", pattern], capture_output=True, text=True)
    return out.stdout.splitlines()
