"""The influxdb role's schema tasks on a real influxd (auth on), run by ansible-playbook.

Above all the dashboards' retention policy selector: written by the role, readable by
the READ user, answering the dashboards' own variable queries with one policy per time
range, unchanged by a second run and rewritten after drift.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dashboards import common
from sitevis import rollup
from sitevis.influx import Influx
from sitevis.query import Where
from tests.harness import grafana as g
from tests.harness.influx import InfluxServer, backfill_rollups, rollup_queries
from tests.harness.influx_role import ADMIN, GRAFANA, apply_schema, stats

REPO = Path(__file__).parents[2]
DEFAULTS = yaml.safe_load((REPO / "roles/influxdb/defaults/main.yml").read_text())
DB = DEFAULTS["influxdb_database"]
RAW = DEFAULTS["influxdb_raw_retention_policy"]
LONG = DEFAULTS["influxdb_long_retention_policy"]
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
SELECTOR = f'SELECT * FROM {common.RP_SELECTOR}'


@pytest.fixture
def server(influxdb_auth: InfluxServer) -> Iterator[InfluxServer]:
    """An influxd with auth on and its admin: what the role has after tasks/admin.yml."""
    influxdb_auth.query(f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' "
                        "WITH ALL PRIVILEGES")
    yield influxdb_auth


def selected(server: InfluxServer, start_ms: int, end_ms: int,
             auth: tuple[str, str] = GRAFANA) -> tuple[str, ...]:
    """(rp, rp_interval) as the dashboards' variables get them for this range."""
    values = []
    for field in ("rp", "interval"):
        text = g.interpolate(common.rp_query(field), {}, start_ms=start_ms, end_ms=end_ms,
                             interval_s=10)
        values += [row[field] for row in server.rows(text, db=DB, auth=auth)]
    return tuple(values)


def selector_points(server: InfluxServer) -> list[dict]:
    return server.rows(SELECTOR, db=DB, auth=ADMIN)


def test_the_role_writes_a_selector_the_dashboards_read(server: InfluxServer, tmp_path: Path):
    first = stats(apply_schema(server, tmp_path))
    assert first["changed"] > 0
    now = int(time.time() * 1000)
    raw = (RAW, DEFAULTS["influxdb_raw_interval"])
    long = (LONG, DEFAULTS["influxdb_downsample_interval"])
    # The READ user (Grafana's) reads it; one policy for every range.
    assert selected(server, now - HOUR_MS, now) == raw
    assert selected(server, now - 30 * DAY_MS, now) == long
    # Within the raw retention, up to influxdb_raw_max_range (2d): raw; longer: long.
    assert selected(server, now - 2 * DAY_MS, now) == raw
    assert selected(server, now - 2 * DAY_MS - 60_000, now) == long
    # An hour older than the raw retention (30d) has only the long policy's sums.
    assert selected(server, now - 40 * DAY_MS, now - 40 * DAY_MS + HOUR_MS) == long
    assert selected(server, now - 29 * DAY_MS, now - 29 * DAY_MS + HOUR_MS) == raw
    # Older than even the long retention, or everything since 1970: still one answer.
    assert selected(server, now - 800 * DAY_MS, now - 799 * DAY_MS) == long
    assert selected(server, 0, now) == long

    second = stats(apply_schema(server, tmp_path))
    assert second["changed"] == 0 and second["failures"] == 0


def test_the_selector_follows_the_role_variables(server: InfluxServer, tmp_path: Path):
    stats(apply_schema(server, tmp_path))
    now = int(time.time() * 1000)
    assert selected(server, now - 5 * DAY_MS, now)[0] == LONG
    changed = stats(apply_schema(server, tmp_path, influxdb_raw_max_range="7d",
                                 influxdb_raw_interval="30s"))
    assert changed["changed"] > 0
    assert selected(server, now - 5 * DAY_MS, now) == (RAW, "30s")
    assert len(selector_points(server)) == 2


def test_drift_in_the_selector_is_repaired(server: InfluxServer, tmp_path: Path):
    stats(apply_schema(server, tmp_path))
    wanted = selector_points(server)
    [raw_point, _] = wanted
    measurement = common.RP_SELECTOR.split(".")[1].strip('"')
    meta = common.RP_SELECTOR.split(".")[0].strip('"')
    # One point overwritten with another policy's name, one stray point added.
    drift = (f'{measurement} rp="{LONG}",interval="5m",max_range_ms=1i {raw_point["time"]}\n'
             f'{measurement} rp="old",interval="1h",max_range_ms=5i 86400000000000')
    assert server.write(DB, drift, auth=ADMIN, rp=meta) == 204
    assert selector_points(server) != wanted

    repaired = stats(apply_schema(server, tmp_path))
    assert repaired["changed"] > 0
    assert selector_points(server) == wanted
    assert stats(apply_schema(server, tmp_path))["changed"] == 0

    server.query(f'DELETE FROM "{measurement}"', db=DB, auth=ADMIN)
    assert selector_points(server) == []
    assert stats(apply_schema(server, tmp_path))["changed"] > 0
    assert selector_points(server) == wanted


def test_preflight_refuses_a_raw_range_beyond_the_raw_retention(server: InfluxServer,
                                                               tmp_path: Path):
    run = apply_schema(server, tmp_path, influxdb_raw_max_range="31d")
    assert run.returncode != 0
    assert "influxdb_raw_max_range (31d) at most the raw retention" in " ".join(run.stdout.split())
    series = server.query("SHOW DATABASES", auth=ADMIN)["results"][0].get("series", [])
    databases = [v[0] for s in series for v in s.get("values", [])]
    assert DB not in databases   # stopped before any change


def test_the_long_policy_keeps_no_flow_addresses(server: InfluxServer, tmp_path: Path):
    """Run the role's own flow continuous query over raw points of many peers: long holds
    one series per bounded tag set, with the exact sums, and no src or dst."""
    stats(apply_schema(server, tmp_path))
    cqs = {row["name"]: row["query"]
           for row in server.rows("SHOW CONTINUOUS QUERIES", db=DB, auth=ADMIN)}
    text = cqs[f"sitevis_flow_{DEFAULTS['influxdb_downsample_interval']}"]
    select = text[text.index("BEGIN ") + 6:text.rindex(" END")]
    now = int(time.time())
    bucket = now - now % 300 - 600         # a whole 5-minute bucket in the past
    lines = "\n".join(
        f"flow,site=s,box=b1,iface=eth0,dir=ingress,proto=tcp,src=203.0.113.{i},"
        f"dst=198.18.0.1,service=tcp/443 packets=2i,bytes={100 + i}i,flows=1i "
        f"{(bucket + 10 * (i % 30)) * 10**9}" for i in range(200))
    server.write(DB, lines, auth=ADMIN)
    window = f"WHERE time >= {bucket}s AND time < {bucket + 300}s GROUP BY"
    server.query(select.replace("GROUP BY", window, 1), db=DB, auth=ADMIN)
    # (SHOW TAG KEYS would not tell: on 1.x it ignores the retention policy, and GROUP BY *
    # lists the measurement's tag keys of every policy, empty where a series has none.)
    [series] = server.query(f'SELECT * FROM "{LONG}"."flow" GROUP BY *', db=DB,
                            auth=ADMIN)["results"][0]["series"]
    assert series["tags"] == {"site": "s", "box": "b1", "iface": "eth0", "dir": "ingress",
                              "proto": "tcp", "service": "tcp/443", "src": "", "dst": ""}
    [row] = [dict(zip(series["columns"], values, strict=True)) for values in series["values"]]
    assert row["bytes"] == sum(100 + i for i in range(200)) and row["packets"] == 400
    assert row["flows"] == 200


def test_flow_rollups_give_the_totals_raw_gives(server: InfluxServer, tmp_path: Path):
    """The role's rollup continuous queries (flow -> flow_5m -> flow_1h, every tag) and
    its record of when they began; run over five past hours of raw points of many
    peers, a top list read through them (sitevis.rollup: whole hours, 5-minute buckets
    and raw edges) equals raw's sums, per talker, and reads the hourly rollup where it
    can."""
    stats(apply_schema(server, tmp_path))
    cqs = {row["name"]: row["query"]
           for row in server.rows("SHOW CONTINUOUS QUERIES", db=DB, auth=ADMIN)}
    assert {n: q for n, q in cqs.items() if "rollup" in n} == rollup_queries(DB)
    hour = int(time.time()) // 3600 * 3600
    first = hour - 6 * 3600                    # raw points in [first, first + 5 h)
    lines = [f"flow,site=s,box=b{i % 3},iface=eth0,dir=ingress,proto=udp,"
             f"src=198.18.{i % 7}.{i % 50},dst=198.19.0.1,service=udp/53 "
             f"packets={1 + i % 4}i,bytes={60 + i % 1000}i,flows=1i {(first + 10 * i) * 10**9}"
             for i in range(5 * 360)]
    for chunk in range(0, len(lines), 5000):
        server.write(DB, "\n".join(lines[chunk:chunk + 5000]), auth=ADMIN)
    # The role recorded when its rollups began (now): none of those hours is in them yet.
    influx = Influx(server.url, DB, *ADMIN)
    rollup.clear_cache()
    began = {t.measurement: t.since_ns for t in rollup.tiers(influx, RAW)}
    assert set(began) == {"flow_5m", "flow_1h"}
    assert all(abs(v / 1e9 - time.time()) < 3600 + 300 for v in began.values())
    # What the CQs would have summed, had they run while those hours were written.
    backfill_rollups(server, DB, first, first + 5 * 3600, auth=ADMIN)
    rollup.clear_cache()
    tiers = rollup.tiers(influx, RAW)
    assert [t.measurement for t in tiers] == ["flow_1h", "flow_5m"]
    # Long enough that the rollups are worth their extra statements (rollup.cost).
    start, end = (first + 53 * 60 + 7) * 10**9, (first + 5 * 3600 - 13 * 60 + 7) * 10**9
    used = {s.measurement for s in rollup.cheapest(start, end, time.time_ns(), tiers)}
    assert used == {"flow", "flow_5m", "flow_1h"}
    through = rollup.totals(influx, RAW, Where().tag("dir", "ingress"),
                            ("bytes", "packets"), ("src", "dst"), start, end)
    direct = {}
    query = (f'SELECT SUM("bytes") AS "bytes", SUM("packets") AS "packets" FROM "{RAW}"."flow" '
             f"WHERE time >= {start} AND time < {end} GROUP BY src, dst")
    for series in server.query(query, db=DB, auth=ADMIN)["results"][0]["series"]:
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        direct[(series["tags"]["src"], series["tags"]["dst"])] = {
            "bytes": row["bytes"], "packets": row["packets"]}
    assert len(direct) == 350 and through == direct
    second = stats(apply_schema(server, tmp_path))
    assert second["changed"] == 0 and second["failures"] == 0
    # Without rollups the role drops their queries and its record: readers go to raw.
    dropped = stats(apply_schema(server, tmp_path, influxdb_rollup_intervals=[]))
    assert dropped["failures"] == 0
    assert not [row for row in server.rows("SHOW CONTINUOUS QUERIES", db=DB, auth=ADMIN)
                if "rollup" in row["name"]]
    rollup.clear_cache()
    assert rollup.tiers(influx, RAW) == []
