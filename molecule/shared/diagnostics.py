"""Shared by the scenarios' testinfra suites: reading the site's InfluxDB from a box, and
what to print when a verify fails (collector journal, check output, the query result)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

QUERY = r"""
import base64, json, sys, urllib.parse, urllib.request
url, db, q = sys.argv[1:4]
user, password = sys.stdin.read().split("\n")[:2]
req = urllib.request.Request(url + "/query?" + urllib.parse.urlencode({"db": db, "q": q}))
if user:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", "Basic " + token)
print(urllib.request.urlopen(req, timeout=10).read().decode())
"""
WRITE = r"""
import base64, sys, urllib.error, urllib.request
url, line = sys.argv[1:3]
user, password = sys.stdin.read().split("\n")[:2]
req = urllib.request.Request(url, data=line.encode())
if user:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", "Basic " + token)
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as err:
    print(err.code)
"""
COLLECTOR = "/opt/sitevis-collector/venv/bin/sitevis-collector"
COLLECTOR_CONFIG = "/etc/sitevis/collector.yml"


def read_user() -> tuple[str, str]:
    """The READ user the rollout generated (the collector's user may only write)."""
    secrets = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
    return "grafana", (secrets / "influxdb_grafana_password").read_text().strip()


def influx_rows(host, q: str, auth: tuple[str, str] | None = None,
                url: str | None = None, database: str = "sitevis") -> list[dict]:
    """Rows of an InfluxQL query run on a host: against `url`, or on a box against the URL
    its collector writes to.

    The password reaches the query on stdin (only through the test's own docker exec)."""
    if url is None:
        config = json.loads(host.check_output(
            "/opt/sitevis-collector/venv/bin/python -c "
            + shlex.quote("import json,yaml; print(json.dumps(yaml.safe_load(open('"
                          + COLLECTOR_CONFIG + "'))['influxdb']))")))
        url, database = config["url"], config["database"]
    user, password = auth or read_user()
    command = " ".join(shlex.quote(a) for a in ("python3", "-c", QUERY, url, database, q))
    out = host.check_output(f"printf '%s\\n%s\\n' {shlex.quote(user)} "
                            f"{shlex.quote(password)} | {command}")
    rows = []
    for result in json.loads(out).get("results", []):
        for series in result.get("series", []):
            for values in series["values"]:
                rows.append({**series.get("tags", {}),
                             **dict(zip(series["columns"], values, strict=True))})
    return rows


def write_status(host, url: str, line: str, auth: tuple[str, str] | None) -> int:
    """HTTP status of one /write made on the box (credentials on stdin)."""
    user, password = auth or ("", "")
    command = " ".join(shlex.quote(a) for a in ("python3", "-c", WRITE, url, line))
    out = host.check_output(f"printf '%s\\n%s\\n' {shlex.quote(user)} "
                            f"{shlex.quote(password)} | {command}")
    return int(out.strip())


def explain(host) -> str:
    """Everything a person needs to understand a failed verify on this box."""
    parts = []
    for title, command in (
        ("collector journal", "journalctl -u sitevis-collector -n 60 --no-pager"),
        ("sitevis-collector check",
         f"{COLLECTOR} check -c {COLLECTOR_CONFIG}"),
        ("our BPF programs (tcx, clsact, xdp)", f"{COLLECTOR} hooks"),
        ("influxd journal", "journalctl -u influxdb -n 30 --no-pager"),
    ):
        result = host.run(command)
        parts.append(f"--- {title} (rc {result.rc}) ---\n{result.stdout}{result.stderr}")
    try:
        rows = influx_rows(host, "SELECT * FROM sitevis_collector ORDER BY time DESC LIMIT 3")
        parts.append(f"--- newest sitevis_collector points ---\n{rows}")
    except Exception as err:
        parts.append(f"--- InfluxDB query failed: {err} ---")
    return "\n".join(parts)
