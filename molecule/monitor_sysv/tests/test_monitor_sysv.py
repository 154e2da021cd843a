"""A monitor without systemd: influxd from the role's init script, Grafana absent."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from diagnostics import influx_rows, read_user, write_status

# InfluxDB listens on loopback only: the requests are made inside the container.
LOCAL = "http://127.0.0.1:8086"
WRITE_URL = LOCAL + "/write?db=sitevis"


def secret(name: str) -> str:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / name
    return path.read_text().strip()


def test_influxd_runs_from_the_role_init_script_as_influxdb(host):
    assert host.file("/etc/init.d/sitevis-influxdb").mode == 0o755
    pid = host.file("/run/sitevis-influxdb.pid").content_string.strip()
    proc = host.file(f"/proc/{pid}/status").content_string
    assert "Name:\tinfluxd" in proc
    uid = host.check_output("id -u influxdb")
    assert f"Uid:\t{uid}\t" in proc
    assert host.run("/etc/init.d/sitevis-influxdb status").rc == 0


def test_started_at_boot_by_the_role_script_not_the_package_one(host):
    rc2 = host.check_output("ls /etc/rc2.d").split()
    assert any(name.startswith("S") and name.endswith("sitevis-influxdb") for name in rc2)
    assert not any(name.startswith("S") and name.endswith("influxdb") and "sitevis" not in name
                   for name in rc2)


def test_loopback_only_and_authentication_on(host):
    assert host.socket("tcp://127.0.0.1:8086").is_listening
    assert not host.socket("tcp://0.0.0.0:8086").is_listening
    assert {"name": "sitevis"} in influx_rows(host, "SHOW DATABASES", auth=read_user(), url=LOCAL)
    assert write_status(host, WRITE_URL, "flow bytes=1i", auth=None) == 401
    collector = ("collector", secret("influxdb_collector_password"))
    assert write_status(host, WRITE_URL, "flow bytes=1i", auth=collector) == 204
    assert write_status(host, WRITE_URL, "flow bytes=1i", auth=read_user()) == 403


def test_provisioning_without_grafana_is_root_only(host):
    ds_file = host.file("/etc/grafana/provisioning/datasources/sitevis.yml")
    assert (ds_file.user, ds_file.group, ds_file.mode) == ("root", "root", 0o640)
    [ds] = yaml.safe_load(ds_file.content_string)["datasources"]
    assert ds["uid"] == "sitevis-influxdb"
    assert ds["url"] == "http://127.0.0.1:8086"
    assert ds["secureJsonData"]["password"] == secret("influxdb_grafana_password")
