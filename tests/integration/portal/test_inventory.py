"""`sitevis portal import -i` loads an Ansible inventory; the inventory plugin
sitevis.site.portal gives the boxes back to a real ansible-playbook run."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.portal import PortalServer
from tests.harness.tools import tool
from tests.integration.portal.conftest import portal_available

pytestmark = pytest.mark.ansible
REPO = Path(__file__).parents[3]
INVENTORY = """\
all:
  children:
    boxes:
      children:
        web:
          hosts:
            web1: {ansible_host: 198.18.5.1, collector_box: w1}
        db:
          hosts:
            db1:
    monitor:
      hosts:
        mon1:
  vars:
    sitevis_site: lab
"""
PLAYBOOK = """\
- name: Record what the inventory says about each box
  hosts: boxes
  gather_facts: false
  tasks:
    - name: Write the box's view
      ansible.builtin.copy:
        content: "{{ {'groups': group_names, 'box': collector_box, 'site': collector_site,
                      'address': hostvars[inventory_hostname].ansible_host | default('')}
                    | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalServer]:
    reason = portal_available()
    if reason:
        pytest.skip(reason)
    server = PortalServer()
    try:
        server.start()
        server.user("admin", "admin")
        yield server
    finally:
        server.cleanup()


def test_import_loads_the_boxes_once_and_logs_it(portal: PortalServer, tmp_path: Path):
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    first = portal.manage("import", "-i", str(tmp_path / "hosts.yml")).stdout
    assert first.strip() == "1 sites created, 2 boxes created, 0 boxes updated, 0 unchanged"
    again = portal.manage("import", "-i", str(tmp_path / "hosts.yml")).stdout
    assert again.strip() == "0 sites created, 0 boxes created, 0 boxes updated, 2 unchanged"
    api = portal.api(portal.token("admin"))
    boxes = {b["name"]: b for b in api.get(f"{portal.url}/api/boxes/").json()["results"]}
    assert boxes["w1"]["address"] == "198.18.5.1" and boxes["w1"]["groups"] == ["web"]
    assert boxes["db1"]["address"] == "db1" and boxes["db1"]["site_name"] == "lab"
    changes = api.get(f"{portal.url}/api/changes/", params={
        "object_type": "inventory.box"}).json()["results"]
    assert len(changes) == 2 and all(c["user_name"].startswith("import:") for c in changes)
    # What the portal role loads: the same records as JSON.
    (tmp_path / "boxes.json").write_text(json.dumps([
        {"name": "w1", "site": "lab", "address": "198.18.5.1", "groups": ["web"]},
        {"name": "n1", "site": "new", "address": "", "groups": []}]))
    loaded = portal.manage("import", "--json", str(tmp_path / "boxes.json")).stdout
    assert loaded.strip() == "1 sites created, 1 boxes created, 0 boxes updated, 1 unchanged"
    missing = portal.manage("import", "-i", str(tmp_path / "nope.yml"), check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def run_playbook(portal: PortalServer, tmp_path: Path, token: str,
                 **options: object) -> subprocess.CompletedProcess[str]:
    config = {"plugin": "sitevis.site.portal", "url": portal.url, **options}
    (tmp_path / "portal.yml").write_text(json.dumps(config))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "out").mkdir(exist_ok=True)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "SITEVIS_PORTAL_TOKEN": token, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}
    return subprocess.run(
        [tool("ansible-playbook"), "-i", str(tmp_path / "portal.yml"), str(tmp_path / "play.yml"),
         "-e", f"out_dir={tmp_path / 'out'}", "-e", "ansible_connection=local",
         "-e", "ansible_python_interpreter=/usr/bin/python3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_playbook_gets_the_portals_boxes(portal: PortalServer, tmp_path: Path):
    api = portal.api(portal.token("admin", write=True))
    site = api.post(f"{portal.url}/api/sites/", json={"name": "far west"}).json()
    api.post(f"{portal.url}/api/boxes/", json={"name": "f1", "site": site["id"],
                                               "groups": ["edge"]})
    proc = run_playbook(portal, tmp_path, portal.token("admin"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    seen = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}
    assert seen == {
        "w1": {"groups": ["boxes", "site_lab", "web"], "box": "w1", "site": "lab",
               "address": "198.18.5.1"},
        "db1": {"groups": ["boxes", "db", "site_lab"], "box": "db1", "site": "lab",
                "address": "db1"},
        "f1": {"groups": ["boxes", "edge", "site_far_west"], "box": "f1", "site": "far west",
               "address": ""},
        "n1": {"groups": ["boxes", "site_new"], "box": "n1", "site": "new", "address": ""},
    }
    only_far = run_playbook(portal, tmp_path / "out", portal.token("admin"),
                            sites=["far west"])
    assert only_far.returncode == 0, only_far.stdout[-3000:]
    assert "f1" in only_far.stdout and "w1" not in only_far.stdout


def test_a_wrong_token_fails_the_inventory_in_one_line(portal: PortalServer, tmp_path: Path):
    proc = run_playbook(portal, tmp_path, "svp_000000000000_forged")
    assert proc.returncode != 0
    assert f"sitevis portal at {portal.url}" in proc.stdout + proc.stderr
    assert "forged" not in proc.stdout + proc.stderr
