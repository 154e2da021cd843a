"""Secrets dir and --limit boxes come from the inventory as the playbooks see it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sitevis.connection import connect
from sitevis.inventory import InventoryError, SiteInventory, inventory_path
from sitevis.paths import project_dir

HOSTS = """all:
  children:
    boxes:
      hosts:
        box1: {collector_box: edge-1}
        box2:
        box3:
    monitor:
      hosts:
        mon1:
        mon2:
"""


def site(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "site"
    for name, text in {"hosts.yml": HOSTS, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def inventory(path: Path) -> SiteInventory:
    return SiteInventory(project_dir(), path)


def test_default_secrets_dir_is_next_to_the_inventory(tmp_path: Path):
    root = site(tmp_path, {})
    assert inventory(root).secrets_dir() == root / ".secrets"
    assert inventory(root / "hosts.yml").secrets_dir() == root / ".secrets"


def test_sitevis_secrets_dir_in_group_vars_wins(tmp_path: Path):
    root = site(tmp_path, {"group_vars/all/main.yml": f"sitevis_secrets_dir: {tmp_path}/vault\n"})
    assert inventory(root).secrets_dir() == tmp_path / "vault"


def test_a_templated_secrets_dir_is_rendered_like_ansible_does(tmp_path: Path):
    root = site(tmp_path, {"group_vars/all.yml":
                           "sitevis_secrets_dir: \"{{ inventory_dir }}/../keys\"\n"})
    assert inventory(root).secrets_dir() == Path(f"{root}/../keys")


def test_the_first_monitor_hosts_own_value_counts(tmp_path: Path):
    # monitor.yml writes monitor.json with the variables of the first monitor host.
    root = site(tmp_path, {"group_vars/all.yml": "sitevis_secrets_dir: /nowhere\n",
                           "host_vars/mon1.yml": f"sitevis_secrets_dir: {tmp_path}/mon1\n",
                           "host_vars/mon2.yml": "sitevis_secrets_dir: /mon2\n"})
    assert inventory(root).secrets_dir() == tmp_path / "mon1"


def test_an_undefined_variable_falls_back_like_the_playbooks(tmp_path: Path):
    # wiring.yml's default(..., true) takes the default place then: so does the controller.
    root = site(tmp_path, {"group_vars/all.yml": "sitevis_secrets_dir: \"{{ nope }}/x\"\n"})
    assert inventory(root).secrets_dir() == root / ".secrets"


def test_a_broken_vars_file_is_one_line(tmp_path: Path):
    root = site(tmp_path, {"host_vars/mon1.yml": "sitevis_secrets_dir: [unclosed\n"})
    with pytest.raises(InventoryError, match="host mon1: ") as err:
        inventory(root).secrets_dir()
    assert "\n" not in str(err.value)


def test_status_reads_monitor_json_from_the_configured_secrets_dir(tmp_path: Path):
    root = site(tmp_path, {"group_vars/all.yml": f"sitevis_secrets_dir: {tmp_path}/elsewhere\n"})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "monitor.json").write_text(json.dumps(
        {"url": "http://127.0.0.1:1", "database": "db", "username": "grafana",
         "password": "pw", "site": "lab"}))
    (root / ".secrets").mkdir()  # the default place holds something stale: not read
    (root / ".secrets" / "monitor.json").write_text('{"url": "http://stale:1"}')
    args = argparse.Namespace(inventory=str(root), url=None, database=None, user=None,
                              password=None, password_file=None)
    influx, recorded_site = connect(args)
    assert (influx.url, influx.database, influx.user, influx.password, recorded_site) == (
        "http://127.0.0.1:1", "db", "grafana", "pw", "lab")


@pytest.mark.parametrize("limit, boxes", [
    ("box1", ["edge-1"]),
    ("box2,box3", ["box2", "box3"]),
    ("box*", ["edge-1", "box2", "box3"]),
    ("boxes,!box2", ["edge-1", "box3"]),
    ("all", ["edge-1", "box2", "box3"]),
    ("~box[12]", ["edge-1", "box2"]),
    ("mon1", []),
    ("nosuchhost", []),
])
def test_limit_selects_boxes_like_ansible(tmp_path: Path, limit: str, boxes: list[str]):
    assert inventory(site(tmp_path, {})).boxes(limit) == boxes


def test_a_missing_inventory_path_is_refused(tmp_path: Path):
    with pytest.raises(InventoryError, match="no such file or directory"):
        inventory_path(project_dir(), str(tmp_path / "typo"))
    assert inventory_path(project_dir(), None) == project_dir() / "inventory" / "local"
