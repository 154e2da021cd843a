"""What the portal may roll out: `rollouts.yml` beside the portal's config file.

    project: /srv/sitevis          # a sitevis checkout (playbooks/, ansible.cfg)
    inventories:                   # name (the site) -> inventory path (relative: project's)
      lab: inventory/lab
    root_runner: /var/lib/sitevis-portal-runner   # optional: root runs the playbooks

With `root_runner` (a spool directory) the worker hands each rollout to the root runner
(rootrun.py) instead of running ansible-playbook itself: for inventories whose plays
become root on the monitor itself (`ansible_connection=local`), which the worker's
sandbox (no new privileges, no sudo) cannot.

Without the file (or with no inventory) launching answers 409 "rollouts are not
configured on this portal": a portal never runs a playbook nobody pointed it at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings

from sitevis.portal.config import ConfigError
from sitevis.portal.rollouts.request import NAME_PATTERN

FILE_NAME = "rollouts.yml"
KEYS = {"project", "inventories", "root_runner"}


@dataclass(frozen=True)
class RolloutConfig:
    path: Path
    project: Path | None = None
    inventories: dict[str, Path] = field(default_factory=dict)
    root_runner: Path | None = None

    def inventory(self, name: str) -> Path | None:
        return self.inventories.get(name)


def load(path: Path | None = None) -> RolloutConfig:
    path = path or settings.CONFIG.path.parent / FILE_NAME
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return RolloutConfig(path)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from None
    if not isinstance(data, dict) or set(data) - KEYS:
        raise ConfigError(f"{path}: only the keys {', '.join(sorted(KEYS))} are settings")
    if not data.get("project"):
        return RolloutConfig(path)
    project = Path(data["project"]).resolve()
    root_runner = data.get("root_runner") or None
    # With a root runner only root needs to see the project: a checkout under /root or
    # /home is hidden from the portal's sandbox (ProtectHome) and is checked by the runner.
    if root_runner is None and not (project / "playbooks").is_dir():
        raise ConfigError(f"{path}: project {project} has no playbooks/ directory")
    inventories = data.get("inventories") or {}
    if not isinstance(inventories, dict):
        raise ConfigError(f"{path}: inventories must map a name to an inventory path")
    for name in inventories:
        if not re.fullmatch(NAME_PATTERN, str(name)):
            raise ConfigError(f"{path}: inventory name {str(name)[:80]!r} is not letters, "
                              "digits, '.', '_' or '-' (at most 100)")
    if root_runner is not None and not Path(str(root_runner)).is_absolute():
        raise ConfigError(f"{path}: root_runner must be an absolute path, got {root_runner!r}")
    return RolloutConfig(path, project, {
        str(name): (project / str(inv)).resolve() for name, inv in inventories.items()},
        Path(root_runner) if root_runner else None)
