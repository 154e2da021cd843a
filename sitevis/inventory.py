"""The site's inventory as the playbooks see it, read with Ansible's own machinery.

Secrets directory and box names are Ansible variables (sitevis_secrets_dir, collector_box)
that a site may set anywhere Ansible looks: inventory files, group_vars, host_vars, even as
templates. Asking Ansible, with the playbooks' own group_vars loaded, gives the answer the
rollout gives.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The playbooks' own definitions (playbooks/group_vars/all/wiring.yml, verify.yml).
SECRETS_DIR = "{{ sitevis_secrets_dir_resolved }}"
BOX_NAME = "{{ collector_box | default(inventory_hostname) }}"


class InventoryError(Exception):
    """An inventory that cannot be used: one line."""


def default_inventory(project: Path) -> Path:
    """ansible.cfg's inventory, relative to the project as ansible-playbook reads it."""
    config = configparser.ConfigParser()
    config.read(project / "ansible.cfg")
    return project / config.get("defaults", "inventory", fallback="inventory/local")


def inventory_path(project: Path, given: str | None) -> Path:
    """The inventory to use, which must exist: a path that does not is a typo, and
    ansible-runner would take the typo itself for inventory content."""
    path = Path(given) if given else default_inventory(project)
    if not path.exists():
        raise InventoryError(f"inventory {given or path}: no such file or directory")
    return path.resolve()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Ansible warns on stderr about patterns that match nothing (an answer here, not a
    problem) and its imports warn about deprecations; keep our output to our own lines."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


class SiteInventory:
    """One inventory with the playbooks' group_vars, as ansible-playbook loads them."""

    def __init__(self, project: Path, path: Path) -> None:
        self.path = path
        # ansible-playbook runs in the project, so the project's ansible.cfg (vault
        # password file, inventory plugins) applies; the same here.
        os.environ.setdefault("ANSIBLE_CONFIG", str(project / "ansible.cfg"))
        with _quiet():
            from ansible.errors import AnsibleError
            from ansible.inventory.manager import InventoryManager
            from ansible.vars.manager import VariableManager

            self._errors: tuple[type[Exception], ...] = (AnsibleError,)
            try:
                self._loader = _loader(project)
                self._inventory = InventoryManager(loader=self._loader, sources=[str(path)])
                self._vars = VariableManager(loader=self._loader, inventory=self._inventory)
            except AnsibleError as err:
                raise InventoryError(f"inventory {path}: {_one_line(err)}") from None

    def _template(self, host: Any, template: str) -> str:
        from ansible.template import Templar, trust_as_template

        with _quiet():
            try:
                variables = self._vars.get_vars(host=host)
                return str(Templar(loader=self._loader, variables=variables)
                           .template(trust_as_template(template)))
            except self._errors as err:
                raise InventoryError(f"inventory {self.path}, host {host.name}: "
                                     f"{_one_line(err)}") from None

    def _hosts(self, pattern: str) -> list[Any]:
        with _quiet():
            return list(self._inventory.get_hosts(pattern))

    def secrets_dir(self) -> Path:
        """Where the rollout keeps this site's secrets and monitor.json: the monitor play
        writes them with the variables of the first monitor host."""
        monitors = self._hosts("monitor")
        if not monitors:  # no monitor, nothing recorded: the default place
            return (self.path if self.path.is_dir() else self.path.parent) / ".secrets"
        return Path(self._template(monitors[0], SECRETS_DIR))

    def boxes(self, limit: str) -> list[str]:
        """Box names (the `box` tag) of the hosts of group boxes that an Ansible --limit
        pattern selects: names, groups, globs, ~regex, !exclusions, &intersections."""
        with _quiet():
            self._inventory.subset(limit)
        try:
            return [self._template(host, BOX_NAME) for host in self._hosts("boxes")]
        finally:
            with _quiet():
                self._inventory.subset(None)


def _loader(project: Path) -> Any:
    """Ansible's file loader, based in playbooks/ so their group_vars apply, with the vault
    secrets ansible.cfg names (there is no prompt here)."""
    from ansible import constants
    from ansible.cli import CLI
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    loader.set_basedir(str(project / "playbooks"))
    password_file = constants.DEFAULT_VAULT_PASSWORD_FILE
    secrets = CLI.setup_vault_secrets(
        loader, vault_ids=list(constants.DEFAULT_VAULT_IDENTITY_LIST),
        vault_password_files=[password_file] if password_file else [],
        ask_vault_pass=False, auto_prompt=False, initialize_context=False)
    loader.set_vault_secrets(secrets)
    return loader
