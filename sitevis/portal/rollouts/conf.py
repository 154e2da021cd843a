"""What the portal may roll out: `rollouts.yml` beside the portal's config file.

    project: /srv/sitevis          # a sitevis checkout (playbooks/, ansible.cfg)
    inventories:                   # name (the site) -> inventory path (relative: project's)
      lab: inventory/lab

Without the file (or with no inventory) launching answers 409 "rollouts are not
configured on this portal": a portal never runs a playbook nobody pointed it at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings

from sitevis.portal.config import ConfigError

FILE_NAME = "rollouts.yml"


@dataclass(frozen=True)
class RolloutConfig:
    path: Path
    project: Path | None = None
    inventories: dict[str, Path] = field(default_factory=dict)

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
    if not isinstance(data, dict) or set(data) - {"project", "inventories"}:
        raise ConfigError(f"{path}: only the keys project and inventories are settings")
    if not data.get("project"):
        return RolloutConfig(path)
    project = Path(data["project"]).resolve()
    if not (project / "playbooks").is_dir():
        raise ConfigError(f"{path}: project {project} has no playbooks/ directory")
    inventories = data.get("inventories") or {}
    if not isinstance(inventories, dict):
        raise ConfigError(f"{path}: inventories must map a name to an inventory path")
    return RolloutConfig(path, project, {
        str(name): (project / str(inv)).resolve() for name, inv in inventories.items()})
