# The boxes of a sitevis portal as an Ansible inventory, the way netbox.netbox.nb_inventory
# reads NetBox: one API list, followed page by page, turned into hosts, groups and vars.
from __future__ import annotations

DOCUMENTATION = r"""
name: portal
short_description: boxes from a sitevis portal
description:
  - Reads C(/api/boxes/) of a sitevis portal with an API token and adds every box as a
    host of group C(boxes), of its Ansible groups and of C(site_<site>), with
    C(ansible_host) (its address), C(collector_box) and C(collector_site) set, so the
    site playbooks write the tags the portal knows.
  - The inventory file must end in C(portal.yml) or C(portal.yaml).
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [sitevis.site.portal]
  url:
    description: The portal's base URL.
    required: true
    env:
      - name: SITEVIS_PORTAL_URL
  token:
    description: An API token (read-only is enough).
    required: true
    env:
      - name: SITEVIS_PORTAL_TOKEN
  sites:
    description: Only boxes of these sites (default every site the token sees).
    type: list
    elements: str
    default: []
  validate_certs:
    description: Check TLS certificates for https URLs.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each answer.
    type: int
    default: 30
"""

EXAMPLES = r"""
# inventory/portal.yml
plugin: sitevis.site.portal
url: https://monitor.example:8443
# token from $SITEVIS_PORTAL_TOKEN
sites: [lab]
keyed_groups:
  - key: collector_site
    prefix: in
"""

import json
import re
from urllib.parse import urlencode

from ansible.errors import AnsibleError
from ansible.module_utils.urls import open_url
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

PAGE = 500
# A portal's site name as an Ansible group name (letters, digits, _).
UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "sitevis.site.portal"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("portal.yml", "portal.yaml"))

    def _get(self, url):
        try:
            answer = open_url(url, headers={"Authorization": "Token " + self._token,
                                            "Accept": "application/json"},
                              validate_certs=self.get_option("validate_certs"),
                              timeout=self.get_option("timeout"))
            return json.loads(answer.read())
        except Exception as err:  # one line naming the portal, never the token
            raise AnsibleError(f"sitevis portal at {self._base}: {err}") from None

    def _boxes(self):
        sites = self.get_option("sites") or [None]
        for site in sites:
            query = {"limit": PAGE, "ordering": "name"}
            if site is not None:
                query["site"] = site
            url = f"{self._base}/api/boxes/?{urlencode(query)}"
            while url:
                page = self._get(url)
                yield from page["results"]
                url = page.get("next")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self._base = self.get_option("url").rstrip("/")
        self._token = self.get_option("token")
        strict = self.get_option("strict")
        self.inventory.add_group("boxes")
        for box in self._boxes():
            name = box["name"]
            self.inventory.add_host(name, group="boxes")
            site_group = "site_" + UNSAFE.sub("_", box["site_name"])
            for group in [site_group, *box.get("groups", [])]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            variables = {"collector_box": name, "collector_site": box["site_name"],
                         "sitevis_portal_id": box["id"]}
            if box.get("address"):
                variables["ansible_host"] = box["address"]
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name,
                                              strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name,
                                           strict=strict)
