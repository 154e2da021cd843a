"""A monitor without systemd: influxd from the role's init script, Grafana absent."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

# Talks to InfluxDB from inside the container: it listens on loopback only.
HTTP = r'''
import base64, sys, urllib.error, urllib.parse, urllib.request
method, path, user, password, body = sys.argv[1:6]
req = urllib.request.Request("http://127.0.0.1:8086" + path,
                             data=body.encode() if method == "POST" else None, method=method)
if user:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", "Basic " + token)
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as err:
    print(err.code)
'''


def secret(name: str) -> str:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / name
    return path.read_text().strip()


def status(host, method: str, path: str, user: str = "", password: str = "", body: str = ""):
    args = (HTTP, method, path, user, password, body)
    out = host.check_output("python3 -c" + " %s" * len(args), *args)
    return int(out)


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
    assert status(host, "GET", "/ping") == 204
    assert status(host, "POST", "/write?db=sitevis", body="flow bytes=1i") == 401
    collector = secret("influxdb_collector_password")
    assert status(host, "POST", "/write?db=sitevis", "collector", collector, "flow bytes=1i") == 204
    grafana = secret("influxdb_grafana_password")
    assert status(host, "POST", "/write?db=sitevis", "grafana", grafana, "flow bytes=1i") == 403


def test_provisioning_without_grafana_is_root_only(host):
    ds_file = host.file("/etc/grafana/provisioning/datasources/sitevis.yml")
    assert (ds_file.user, ds_file.group, ds_file.mode) == ("root", "root", 0o640)
    [ds] = yaml.safe_load(ds_file.content_string)["datasources"]
    assert ds["uid"] == "sitevis-influxdb"
    assert ds["url"] == "http://127.0.0.1:8086"
    assert ds["secureJsonData"]["password"] == secret("influxdb_grafana_password")
