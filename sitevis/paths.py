"""Where the controller finds the project (playbooks, roles, ansible.cfg) and keeps artifacts."""

from __future__ import annotations

import os
from pathlib import Path


class ProjectNotFound(Exception):
    """The sitevis repository (with playbooks/site.yml) could not be located."""


def project_dir() -> Path:
    """The repository root: $SITEVIS_PROJECT_DIR, the package's parent, or the cwd."""
    candidates = []
    if env := os.environ.get("SITEVIS_PROJECT_DIR"):
        candidates.append(Path(env))
    candidates += [Path(__file__).resolve().parents[1], Path.cwd()]
    for candidate in candidates:
        if (candidate / "playbooks" / "site.yml").is_file():
            return candidate.resolve()
    raise ProjectNotFound(
        "cannot find the sitevis repository (playbooks/site.yml): run from the checkout "
        "or set SITEVIS_PROJECT_DIR"
    )


def runner_dir(project: Path) -> Path:
    """Private data dir of ansible-runner; artifacts rotate inside it."""
    base = os.environ.get("SITEVIS_RUNNER_DIR")
    return Path(base).resolve() if base else project / ".cache" / "runner"
