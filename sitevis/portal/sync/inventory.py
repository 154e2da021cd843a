"""Boxes of an Ansible inventory, as the playbooks see them (sitevis.inventory's loader):
name = collector_box (default the host name), site = collector_site, address =
ansible_host, groups = the host's groups."""

from __future__ import annotations

from dataclasses import dataclass

from sitevis.inventory import BOX_NAME, SiteInventory

SITE_NAME = "{{ collector_site }}"
ADDRESS = "{{ ansible_host | default(inventory_hostname, true) }}"
# Groups every host is in, or every box: no information.
IMPLICIT_GROUPS = frozenset({"all", "ungrouped", "boxes"})


@dataclass(frozen=True)
class InventoryBox:
    name: str
    site: str
    address: str
    groups: tuple[str, ...]


class BoxInventory(SiteInventory):
    def box_records(self) -> list[InventoryBox]:
        out = []
        for host in self._hosts("boxes"):
            groups = sorted(g.name for g in host.get_groups() if g.name not in IMPLICIT_GROUPS)
            out.append(InventoryBox(self._template(host, BOX_NAME),
                                    self._template(host, SITE_NAME),
                                    self._template(host, ADDRESS), tuple(groups)))
        return out
