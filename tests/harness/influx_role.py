"""The influxdb role's own schema tasks, run by ansible-playbook against a private influxd.

Preflight, passwords and tasks/schema.yml (database, retention policies, continuous
queries, users, the dashboards' retention policy selector) exactly as a rollout runs
them, without installing or starting anything: tests then hold what the role really
writes instead of a copy of it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.harness.influx import InfluxServer
from tests.harness.tools import tool

REPO = Path(__file__).parents[2]
PLAYBOOK = """
- name: The influxdb role's schema on a running influxd
  hosts: localhost
  connection: local
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Preflight, passwords and schema, as tasks/main.yml runs them
      ansible.builtin.include_role:
        name: influxdb
        tasks_from: "{{ tasks_file }}"
      loop: [preflight.yml, passwords.yml, schema.yml]
      loop_control:
        loop_var: tasks_file
"""
# Given passwords (the role generates none then); the admin logs in on an auth server.
PASSWORDS = {"influxdb_admin_password": "admin-pw-0123456789",
             "influxdb_collector_password": "collector-pw-0123456789",
             "influxdb_grafana_password": "grafana-pw-0123456789"}
ADMIN = ("admin", PASSWORDS["influxdb_admin_password"])
GRAFANA = ("grafana", PASSWORDS["influxdb_grafana_password"])


def apply_schema(server: InfluxServer, tmp: Path,
                 **variables: object) -> subprocess.CompletedProcess[str]:
    """Run the role's schema tasks against `server`; stats() reads the outcome."""
    tmp.mkdir(parents=True, exist_ok=True)
    playbook = tmp / "influxdb_schema.yml"
    playbook.write_text(PLAYBOOK)
    extra = tmp / "influxdb_schema_vars.json"
    extra.write_text(json.dumps({
        "ansible_python_interpreter": "/usr/bin/python3",
        "influxdb_bind_address": f"127.0.0.1:{server.http_port}",
        "influxdb_rpc_bind_address": f"127.0.0.1:{server.rpc_port}",
        "influxdb_secrets_dir": str(tmp / "secrets"),
        **PASSWORDS, **variables}))
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    return subprocess.run(
        [tool("ansible-playbook"), "-i", "localhost,",
         "-e", f"@{extra}", str(playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


def stats(result: subprocess.CompletedProcess[str]) -> dict:
    """ok/changed/failed counts of a successful run (the output's tail if it failed)."""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return json.loads(result.stdout)["stats"]["localhost"]
