"""The monitor container after converge: InfluxDB locked down, Grafana provisioned.

HTTP checks run from the controller against the address the role bound InfluxDB to
(the container's own address), the way boxes and Grafana reach a monitor.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

ADMIN = ("admin", "Adm'in\\pw:\"1")  # given in converge.yml, with characters to escape
DATABASE = "sitevis"


def ephemeral() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def secret(name: str) -> str:
    return (ephemeral() / "secrets" / name).read_text().strip()


def collector() -> tuple[str, str]:
    return ("collector", secret("influxdb_collector_password"))


def grafana() -> tuple[str, str]:
    return ("grafana", secret("influxdb_grafana_password"))


@pytest.fixture(scope="module")
def config(host) -> dict:
    return tomllib.loads(host.file("/etc/influxdb/influxdb.conf").content_string)


@pytest.fixture(scope="module")
def base(config) -> str:
    return f"http://{config['http']['bind-address']}"


def request(url: str, *, auth: tuple[str, str] | None = None, data: bytes | None = None):
    """(status, body) of one HTTP request; errors are answers too."""
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def query(base: str, q: str, auth=None, db: str | None = None):
    params = {"q": q} | ({"db": db} if db else {})
    return request(f"{base}/query", auth=auth, data=urllib.parse.urlencode(params).encode())


def write(base: str, lines: str, auth=None, rp: str | None = None):
    params = {"db": DATABASE} | ({"rp": rp} if rp else {})
    return request(f"{base}/write?{urllib.parse.urlencode(params)}", auth=auth, data=lines.encode())


def rows(body: str) -> list[dict]:
    result = json.loads(body)["results"][0]
    assert "error" not in result, result
    return [
        dict(zip(series["columns"], values, strict=True)) | {"_series": series.get("name")}
        for series in result.get("series", [])
        for values in series.get("values", [])
    ]


# --- the service and its configuration ---------------------------------------------


def test_influxd_is_running_and_enabled(host):
    service = host.service("influxdb")
    assert service.is_running
    assert service.is_enabled


def test_config_file_is_root_owned_and_locks_influxdb_down(host, config):
    conf = host.file("/etc/influxdb/influxdb.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    assert config["reporting-enabled"] is False
    assert config["http"]["auth-enabled"] is True
    assert config["http"]["pprof-enabled"] is False
    assert config["bind-address"] == "127.0.0.1:8088"
    assert config["meta"]["dir"] == "/var/lib/influxdb/meta"
    assert config["data"]["wal-dir"] == "/var/lib/influxdb/wal"
    storage = host.file("/var/lib/influxdb")
    assert (storage.user, storage.mode) == ("influxdb", 0o750)


def test_index_and_limits_follow_the_series_budget(host, config):
    """tsi1, and the limits at twice the budget: 2 x boxes (none in this scenario: 1) x
    2500 series a box-day x 30 days of raw x (1 + the two flow rollups)."""
    assert config["data"]["index-version"] == "tsi1"
    assert config["data"]["max-series-per-database"] == 2 * 1 * 2500 * 30 * 3
    assert config["data"]["max-values-per-tag"] == 2 * 1 * 2500 * 30 * 3
    # influxd took the config: its shards are tsi1 (an index directory per shard).
    indexes = host.run("find /var/lib/influxdb/data -type d -name index")
    assert indexes.rc == 0 and indexes.stdout.strip(), "no tsi1 index directory"


def test_api_listens_only_on_the_configured_address(host, config):
    address = config["http"]["bind-address"]
    ip = host.ansible("setup")["ansible_facts"]["ansible_default_ipv4"]["address"]
    assert address == f"{ip}:8086"
    assert host.socket(f"tcp://{address}").is_listening
    assert not host.socket("tcp://127.0.0.1:8086").is_listening
    assert not host.socket("tcp://0.0.0.0:8086").is_listening


def test_first_start_served_loopback_only_until_the_admin_existed(host, config):
    log = host.check_output("journalctl -u influxdb --no-pager -o cat")
    listens = [line for line in log.splitlines() if 'msg="Listening on HTTP"' in line]
    admin_created = log.index("CREATE USER admin")
    before = [line for line in listens if log.index(line) < admin_created]
    assert before and all("addr=127.0.0.1:8086" in line for line in before)
    assert f"addr={config['http']['bind-address']}" in listens[-1]


def test_ping_answers_without_credentials(base):
    assert request(f"{base}/ping")[0] == 204


# --- authentication and least privilege ----------------------------------------------


def test_unauthenticated_writes_and_queries_are_refused(base):
    assert write(base, "flow,box=anon bytes=1i")[0] == 401
    assert query(base, "SHOW DATABASES")[0] == 401


def test_a_wrong_password_is_refused(base):
    assert query(base, "SHOW DATABASES", auth=("collector", "not-the-password"))[0] == 401


def test_the_admin_password_with_quote_backslash_and_colon_works(base):
    status, body = query(base, "SHOW USERS", auth=ADMIN)
    assert status == 200
    users = {row["user"]: row["admin"] for row in rows(body)}
    assert users == {"admin": True, "collector": False, "grafana": False, "portal": False}


def test_each_user_holds_exactly_one_privilege(base):
    for user, privilege in (("collector", "WRITE"), ("grafana", "READ"), ("portal", "WRITE")):
        status, body = query(base, f'SHOW GRANTS FOR "{user}"', auth=ADMIN)
        assert status == 200
        held = [(r["database"], r["privilege"]) for r in rows(body)]
        assert [g for g in held if g[1] != "NO PRIVILEGES"] == [(DATABASE, privilege)]


def test_collector_writes_but_cannot_read_or_administer(base):
    point = "flow,box=molecule,iface=eth0 bytes=10i,packets=1i"
    assert write(base, point, auth=collector())[0] == 204
    assert query(base, "SELECT * FROM flow", auth=collector(), db=DATABASE)[0] == 403
    assert query(base, "SELECT * FROM runtime", auth=collector(), db="_internal")[0] == 403
    assert query(base, "CREATE DATABASE stolen", auth=collector())[0] == 403
    assert query(base, "CREATE USER intruder WITH PASSWORD 'x'", auth=collector())[0] == 403
    assert query(base, "DROP DATABASE sitevis", auth=collector())[0] == 403


def test_grafana_reads_but_cannot_write(base):
    assert write(base, "flow,box=grafana bytes=1i", auth=grafana())[0] == 403
    status, body = query(base, "SELECT count(bytes) FROM flow", auth=grafana(), db=DATABASE)
    assert status == 200
    assert "error" not in json.loads(body)["results"][0]
    assert query(base, "CREATE DATABASE stolen", auth=grafana())[0] == 403


# --- retention and downsampling ----------------------------------------------------------


def test_retention_policies_raw_default_and_long(base):
    status, body = query(base, f"SHOW RETENTION POLICIES ON {DATABASE}", auth=ADMIN)
    assert status == 200
    policies = {r["name"]: r for r in rows(body)}
    assert policies["raw"]["duration"] == "720h0m0s" and policies["raw"]["default"] is True
    assert policies["raw"]["shardGroupDuration"] == "24h0m0s"
    assert policies["long"]["duration"] == "9600h0m0s" and policies["long"]["default"] is False
    assert policies["long"]["shardGroupDuration"] == "168h0m0s"


def continuous_queries(base: str) -> dict[str, str]:
    status, body = query(base, "SHOW CONTINUOUS QUERIES", auth=ADMIN)
    assert status == 200
    return {r["name"]: r["query"] for r in rows(body) if r["_series"] == DATABASE}


# The flow rollups in raw (docs/schema.md, "Rollups").
ROLLUP_CQS = ("sitevis_rollup_flow_5m", "sitevis_rollup_flow_1h")


def test_continuous_queries_downsample_flow_and_iface_into_long(base):
    cqs = continuous_queries(base)
    assert set(cqs) == {"sitevis_flow_5m", "sitevis_iface_5m", *ROLLUP_CQS}
    # long keeps only bounded tags of flow (no addresses), every tag of iface.
    for m, tags in (("flow", "site, box, iface, dir, proto, service"), ("iface", "*")):
        expected = f"INTO sitevis.long.{m} FROM sitevis.raw.{m} GROUP BY time(5m), {tags} END"
        assert expected in cqs[f"sitevis_{m}_5m"]
    assert "RESAMPLE FOR 1h" in cqs["sitevis_iface_5m"]


def test_the_downsampling_query_sums_into_the_long_policy(base):
    """Run the iface CQ's own SELECT ... INTO over the last hour: its output is the sum."""
    box = f"cq{int(time.time())}"
    now = int(time.time())
    bucket = now - now % 300 - 300  # a whole 5-minute bucket in the past
    lines = "\n".join(
        f"iface,box={box},iface=eth0,dir=rx bytes={b}i,packets={p}i {(bucket + s) * 10**9}"
        for s, b, p in ((10, 1000, 2), (70, 500, 1), (130, 250, 3))
    )
    assert write(base, lines, auth=collector(), rp="raw")[0] == 204
    cq = continuous_queries(base)["sitevis_iface_5m"]
    select = cq[cq.index("BEGIN ") + len("BEGIN "): cq.rindex(" END")]
    select = select.replace(" GROUP BY", f" WHERE box = '{box}' AND time > now() - 1h GROUP BY")
    status, body = query(base, select, auth=ADMIN, db=DATABASE)
    assert status == 200, body
    status, body = query(
        base, f"SELECT bytes, packets FROM sitevis.long.iface WHERE box = '{box}'", auth=grafana()
    )
    assert status == 200
    assert [(r["bytes"], r["packets"]) for r in rows(body)] == [(1750, 6)]


def rp_selector(base: str) -> list[tuple]:
    """The dashboards' retention policy selector, as the READ user (Grafana) reads it."""
    status, body = query(base, 'SELECT "rp", "interval", "max_range_ms" FROM '
                         '"sitevis_meta"."sitevis_rp"', auth=grafana(), db=DATABASE)
    assert status == 200, body
    return [(r["time"], r["rp"], r["interval"], r["max_range_ms"]) for r in rows(body)]


def test_the_rp_selector_names_raw_then_long(base):
    """raw for ranges up to 2 d starting within its 30 d, long for every other range."""
    assert rp_selector(base) == [
        ("1970-01-31T00:00:00Z", "raw", "10s", 2 * 86400 * 1000),
        ("2200-01-01T00:00:00Z", "long", "5m", 2**63 - 1),
    ]


# --- Grafana provisioning --------------------------------------------------------------


def test_datasource_provisioning_has_what_grafana_requires(host, base):
    ds_file = host.file("/etc/grafana/provisioning/datasources/sitevis.yml")
    assert (ds_file.user, ds_file.group, ds_file.mode) == ("root", "grafana", 0o640)
    doc = yaml.safe_load(ds_file.content_string)
    assert doc["apiVersion"] == 1
    [ds] = doc["datasources"]
    assert ds["name"] and ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["uid"] == "sitevis-influxdb"
    assert ds["url"] == base
    assert ds["user"] == "grafana"
    assert ds["jsonData"]["dbName"] == DATABASE
    assert ds["jsonData"]["httpMode"] == "POST"
    password = ds["secureJsonData"]["password"]
    assert password == secret("influxdb_grafana_password")
    # What Grafana would do with it: read, not write.
    assert query(base, "SHOW MEASUREMENTS", auth=(ds["user"], password), db=DATABASE)[0] == 200
    assert write(base, "flow,box=x bytes=1i", auth=(ds["user"], password))[0] == 403


def test_dashboard_provider_points_at_the_copied_dashboards(host):
    provider_file = host.file("/etc/grafana/provisioning/dashboards/sitevis.yml")
    assert provider_file.mode == 0o644
    doc = yaml.safe_load(provider_file.content_string)
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["name"] == "sitevis" and provider["type"] == "file"
    path = provider["options"]["path"]
    assert path == "/var/lib/grafana/dashboards/sitevis"
    assert host.file(path).is_directory
    copied = json.loads(host.file(f"{path}/sitevis-molecule.json").content_string)
    assert copied["uid"] == "sitevis-molecule"


# --- secrets ------------------------------------------------------------------------------


def all_secrets() -> list[str]:
    names = ("influxdb_collector_password", "influxdb_grafana_password")
    return [ADMIN[1], *(secret(n) for n in names)]


def test_generated_secrets_are_private_files_on_the_controller():
    for name in ("influxdb_collector_password", "influxdb_grafana_password"):
        path = ephemeral() / "secrets" / name
        assert path.stat().st_mode & 0o777 == 0o600
        assert len(secret(name)) == 32


def test_no_secret_in_target_tmp_files_or_journal(host):
    for value in all_secrets():
        dirs = "/tmp /var/tmp $(test -d /root/.ansible && echo /root/.ansible)"
        found = host.run(f"grep -rlF -- %s {dirs}", value)
        assert found.rc == 1, found.stdout  # 1: searched, no match
        journal = host.run("journalctl --no-pager -o cat | grep -cF -- %s", value)
        assert journal.stdout.strip() == "0"


def test_no_secret_in_the_ansible_log():
    log = (ephemeral() / "ansible.log").read_text()
    assert "Schema | Create users" in log  # the log covers the runs that set passwords
    for value in all_secrets():
        assert value not in log


# --- the grafana role's install path (Grafana's repository) --------------------------

REACH = (
    "import urllib.request; urllib.request.urlopen("
    "urllib.request.Request('https://apt.grafana.com/gpg.key', method='HEAD'), timeout=10)"
)


def test_grafana_install_in_check_mode_passes_or_names_the_unreachable_repository(host):
    """--check with grafana_install: true: passes where the repository is reachable,
    else fails with the one clear line naming the URL (as on these test machines)."""
    reachable = host.run("python3 -c %s", REACH).rc == 0
    scenario = Path(__file__).parents[1]
    env = os.environ | {
        "ANSIBLE_CONFIG": str(ephemeral() / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(scenario.parents[1] / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    run = subprocess.run(
        ["ansible-playbook", "-i", str(ephemeral() / "inventory"), "--check",
         str(scenario / "grafana_install_check.yml")],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    if reachable:
        assert run.returncode == 0, run.stdout[-3000:]
    else:
        assert run.returncode != 0
        output = " ".join((run.stdout + run.stderr).split())
        assert "Cannot reach https://apt.grafana.com/gpg.key" in output, output[-3000:]
        assert "grafana_install: false" in output
    # Check mode changed nothing: Grafana's repository was not added.
    assert not host.file("/etc/apt/sources.list.d/grafana.sources").exists


# --- drift is repaired (runs last: it changes state, then converges it back) ---------


def converge(*extra: str) -> subprocess.CompletedProcess:
    scenario = Path(__file__).parents[1]
    env = os.environ | {
        "ANSIBLE_CONFIG": str(ephemeral() / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(scenario.parents[1] / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        ["ansible-playbook", "-i", str(ephemeral() / "inventory"), *extra,
         str(scenario / "converge.yml")],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )


def test_zz_the_role_repairs_drift_and_then_changes_nothing(base):
    for statement in (
        "GRANT ALL ON sitevis TO grafana",
        "CREATE DATABASE other",
        "GRANT WRITE ON other TO collector",
        "GRANT ALL PRIVILEGES TO collector",
        "SET PASSWORD FOR grafana = 'drifted'",
        "DROP CONTINUOUS QUERY sitevis_flow_5m ON sitevis",
        "CREATE CONTINUOUS QUERY sitevis_old_1h ON sitevis BEGIN SELECT sum(bytes) AS bytes"
        " INTO sitevis.long.old FROM sitevis.raw.old GROUP BY time(1h), * END",
        "ALTER RETENTION POLICY long ON sitevis DURATION 100d",
        "ALTER RETENTION POLICY autogen ON sitevis DEFAULT",
    ):
        status, body = query(base, statement, auth=ADMIN)
        assert status == 200 and "error" not in json.loads(body)["results"][0], (statement, body)
    # The selector: the raw point overwritten, a stray point added.
    assert write(base, 'sitevis_rp rp="long",interval="5m",max_range_ms=1i 2592000000000000\n'
                 'sitevis_rp rp="old",interval="1h",max_range_ms=1i 86400000000000',
                 auth=ADMIN, rp="sitevis_meta")[0] == 204

    repaired = converge()
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert "changed=0" not in repaired.stdout

    test_each_user_holds_exactly_one_privilege(base)
    test_the_admin_password_with_quote_backslash_and_colon_works(base)
    test_retention_policies_raw_default_and_long(base)
    assert set(continuous_queries(base)) == {"sitevis_flow_5m", "sitevis_iface_5m",
                                             *ROLLUP_CQS}
    assert query(base, "SHOW MEASUREMENTS", auth=grafana(), db=DATABASE)[0] == 200
    test_the_rp_selector_names_raw_then_long(base)

    again = converge()
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout, again.stdout[-3000:]


def test_zz_a_wrong_admin_password_stops_with_one_clear_message():
    run = converge("-e", "influxdb_admin_password=not-the-admin-password")
    assert run.returncode != 0
    output = " ".join((run.stdout + run.stderr).split())
    assert "rejects 'admin' as admin (HTTP 401)" in output, output[-3000:]
    assert "set influxdb_admin_password to its current password" in output
