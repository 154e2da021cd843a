"""sitevis.site.influxdb_wait_for_data, run by real ansible against a real influxd."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from tests.harness.influx import InfluxServer
from tests.harness.tools import tool

REPO = Path(__file__).parents[2]


def wait_for_data(**args) -> dict:
    """Run the module ad hoc on localhost; returns its result (failed or not)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}
    proc = subprocess.run(
        [tool("ansible"), "localhost", "-i", "localhost,",
         "-c", "local", "-e", "ansible_python_interpreter=/usr/bin/python3",
         "-m", "sitevis.site.influxdb_wait_for_data", "-a", json.dumps(args)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert (proc.returncode != 0) == bool(result.get("failed")), proc.stdout[-2000:]
    return result


def write_health(influx: InfluxServer, box: str, age_s: float = 0) -> None:
    ts = time.time_ns() - int(age_s * 1e9)
    assert influx.write("sitevis", f"sitevis_collector,site=lab,box={box} "
                                   f"flows_exported=3i {ts}") == 204


def test_finds_a_recent_point_of_the_box(influxdb: InfluxServer):
    influxdb.query("CREATE DATABASE sitevis")
    write_health(influxdb, "box1")
    result = wait_for_data(url=influxdb.url, database="sitevis", tags={"box": "box1"},
                           timeout=10)
    assert result["found"] is True and result["changed"] is False
    assert 0 <= result["age"] < 30


def test_data_arriving_while_waiting_is_found(influxdb: InfluxServer):
    influxdb.query("CREATE DATABASE sitevis")
    writer = threading.Timer(3, write_health, (influxdb, "late"))
    writer.start()
    result = wait_for_data(url=influxdb.url, database="sitevis", tags={"box": "late"},
                           timeout=20, interval=0.5)
    writer.join()
    assert result["found"] is True and result["polls"] > 1


def test_silent_box_fails_naming_what_was_missing(influxdb: InfluxServer):
    influxdb.query("CREATE DATABASE sitevis")
    write_health(influxdb, "box2", age_s=600)      # spoke, but ten minutes ago
    result = wait_for_data(url=influxdb.url, database="sitevis", tags={"box": "box2"},
                           within=60, timeout=2, interval=0.5)
    assert result["failed"] and result["found"] is False
    assert "sitevis_collector.flows_exported box=box2" in result["msg"]
    assert "older than 60s" in result["msg"]
    never = wait_for_data(url=influxdb.url, database="sitevis", tags={"box": "box9"},
                          timeout=1)
    assert "no sitevis_collector.flows_exported box=box9 point at all" in never["msg"]


def test_unreachable_influxdb_is_named(influxdb: InfluxServer):
    influxdb.stop()
    result = wait_for_data(url=influxdb.url, database="sitevis", timeout=1)
    assert result["failed"] and f"InfluxDB at {influxdb.url} did not answer" in result["msg"]


def test_refused_credentials_fail_at_once(influxdb_auth: InfluxServer):
    admin = ("admin", "pw-admin")
    influxdb_auth.query("CREATE USER admin WITH PASSWORD 'pw-admin' WITH ALL PRIVILEGES")
    influxdb_auth.query("CREATE DATABASE sitevis", auth=admin)
    started = time.monotonic()
    result = wait_for_data(url=influxdb_auth.url, database="sitevis", username="admin",
                           password="wrong-password", timeout=30)
    assert result["failed"] and "refused the query (401)" in result["msg"]
    assert time.monotonic() - started < 20
    assert "wrong-password" not in json.dumps(result)
