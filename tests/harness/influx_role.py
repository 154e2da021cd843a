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
             "influxdb_grafana_password": "grafana-pw-0123456789",
             "influxdb_portal_password": "portal-pw-0123456789"}
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


CONFIG_PLAYBOOK = """
- name: The influxdb role's influxdb.conf, rendered as a rollout renders it
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{defaults}, {vars}]
  tasks:
    - name: Render the role's template
      ansible.builtin.template:
        src: {template}
        dest: "{{{{ rendered_config }}}}"
        mode: "0600"
"""


def role_data_settings(tmp: Path, **variables: object) -> dict[str, str]:
    """The [data] settings of influxdb.conf as the role renders it for `variables` (index,
    series limits), to start a private influxd the way the role configures one."""
    tmp.mkdir(parents=True, exist_ok=True)
    role = REPO / "roles" / "influxdb"
    playbook = tmp / "influxdb_config.yml"
    playbook.write_text(CONFIG_PLAYBOOK.format(
        defaults=role / "defaults" / "main.yml", vars=role / "vars" / "main.yml",
        template=role / "templates" / "influxdb.conf.j2"))
    rendered = tmp / "influxdb.conf"
    extra = tmp / "influxdb_config_vars.json"
    extra.write_text(json.dumps({"rendered_config": str(rendered),
                                 "ansible_python_interpreter": "/usr/bin/python3",
                                 **variables}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    result = subprocess.run(
        [tool("ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}", str(playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    settings: dict[str, str] = {}
    section = ""
    for line in rendered.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[data]" and "=" in line and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            if key in ("index-version", "max-series-per-database", "max-values-per-tag"):
                settings[key] = value
    return settings
