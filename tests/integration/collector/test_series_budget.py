"""The series budget on real parts: a real collector under high-churn netns traffic
(thousands of distinct peers and ports) writes into an influxd configured by the
influxdb role (its own rendered settings, with the inmem index so the series limit is
enforced, and its schema tasks). With the budget, the box stays within it, the monitor
refuses nothing and Σ flow = iface holds in every interval; without it, the same traffic
runs into the role's limit — and the refusals are counted, not silent."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import influx_role
from tests.harness.influx import InfluxServer, find_influxd
from tests.harness.netns import HostLink
from tests.integration.collector import frames as f
from tests.integration.collector.collector_proc import start, stop, wait_attached, write_config
from tests.integration.collector.kernel_kit import send_frames

DB = "sitevis"
# The role sized for one box creating at most 150 series a day, raw kept one day, no
# flow rollups (no continuous queries run here): max-series-per-database = 2 x 1 x 150 x 1
# = 300.
ROLE = {"influxdb_site_boxes": 1, "influxdb_series_per_box_day": 150,
        "influxdb_raw_duration": "1d", "influxdb_raw_max_range": "1d",
        "influxdb_index_version": "inmem", "influxdb_rollup_intervals": []}
BUDGET = {"talkers": 20, "admissions_per_hour": 360, "services": 5,
          "service_admissions_per_hour": 36}
BURSTS, PEERS = 3, 1500


@pytest.fixture
def quiet_link(bcc_ready, host_link: HostLink) -> Iterator[HostLink]:
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{host_link.ifname}.disable_ipv6=1"],
                   check=True)
    host_link.peer.exec("sysctl", "-qw", "net.ipv6.conf.veth0.disable_ipv6=1")
    yield host_link


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """influxd with the role's rendered [data] settings, then the role's schema tasks.
    The series limit is per database: each test writes into a database of its own."""
    binary = find_influxd()
    assert binary, "influxd not found (Debian package influxdb)"
    tmp_path = tmp_path_factory.mktemp("monitor")
    data = influx_role.role_data_settings(tmp_path / "role", **ROLE)
    assert data["max-series-per-database"] == "300", data
    server = InfluxServer(binary, auth=True, data=data)
    try:
        server.start()
        server.query(f"CREATE USER {influx_role.ADMIN[0]} WITH PASSWORD "
                     f"'{influx_role.ADMIN[1]}' WITH ALL PRIVILEGES")
        influx_role.stats(influx_role.apply_schema(server, tmp_path / "schema", **ROLE))
        yield server
    finally:
        server.stop()
        server.cleanup()


def churn(burst: int) -> list[tuple[bytes, int]]:
    """PEERS new source addresses, each to one of many server ports (below the service
    bound, so each port is a service name): an internet-facing box under a scan."""
    out = []
    for i in range(PEERS):
        n = burst * PEERS + i
        src = f"198.19.{n // 250 % 250}.{n % 250 + 1}"
        frame = f.eth(0x0800, f.ipv4(src, "198.18.0.2", 17, f.udp(40000 + i % 20000,
                                                                  1 + n % 3000)))
        out.append((frame, 1 + i % 2))
    return out


def run(monitor: InfluxServer, link: HostLink, tmp: Path, series: dict, db: str,
        bursts: range = range(BURSTS), frames: Callable[[int], list] = churn,
        pause: float = 0.5) -> tuple[dict, str]:
    """The collector's self-metrics summed over its run, and its log: frames(burst) sent
    for each burst, `pause` seconds apart."""
    password = influx_role.PASSWORDS["influxdb_collector_password"]
    config = write_config(tmp, link, monitor.url, series=series, influxdb={
        "url": monitor.url, "database": db, "username": "collector", "password": password,
        "retry_initial": 0.2, "retry_max": 1})
    proc = start(config)
    wait_attached(link.ifname, proc)
    time.sleep(1.2)
    for burst in bursts:
        send_frames(link.peer, frames(burst))
        time.sleep(pause)
    rc, err = stop(proc)
    assert rc == 0, err
    return monitor.rows("SELECT SUM(points_folded) AS folded, SUM(points_rejected) AS lost, "
                        "SUM(partial_writes) AS partial, LAST(talkers_admitted) AS talkers "
                        "FROM sitevis_collector", db=db, auth=influx_role.ADMIN)[0], err


def flow_series(monitor: InfluxServer, db: str = DB) -> list[str]:
    rows = monitor.rows("SHOW SERIES FROM flow", db=db, auth=influx_role.ADMIN)
    return [row["key"] for row in rows]


def per_interval(monitor: InfluxServer, measurement: str) -> dict[tuple[int, str], int]:
    out: dict[tuple[int, str], int] = {}
    for row in monitor.rows(f"SELECT bytes, dir FROM {measurement}", db=DB,
                            auth=influx_role.ADMIN):
        out[(row["time"], row["dir"])] = out.get((row["time"], row["dir"]), 0) + row["bytes"]
    return {k: v for k, v in out.items() if v}


def test_a_budgeted_collector_stays_within_its_series_and_the_monitor_refuses_nothing(
        quiet_link: HostLink, monitor: InfluxServer, tmp_path: Path):
    health, log = run(monitor, quiet_link, tmp_path, BUDGET, DB)
    series = flow_series(monitor)
    talkers = [s for s in series if "src=198.19." in s]
    print(f"\n{BURSTS * PEERS} peers sent: {len(series)} flow series, {len(talkers)} "
          f"with addresses; {health}")
    # Talkers: the initial fill, one burst token, a few seconds of 0.1/s refill.
    assert len(talkers) <= BUDGET["talkers"] + 1 + 3
    assert len(series) <= 2 * (BUDGET["talkers"] + 4) + 2 * (BUDGET["services"] + 4)
    assert health["folded"] == 0 and health["lost"] == 0 and health["partial"] == 0
    assert "refused" not in log
    assert per_interval(monitor, "flow") == per_interval(monitor, "iface")
    sent = sum(len(frame) * n for b in range(BURSTS) for frame, n in churn(b))
    assert sum(per_interval(monitor, "iface").values()) == sent


def test_without_the_budget_the_same_traffic_hits_the_limit_and_says_so(
        quiet_link: HostLink, monitor: InfluxServer, tmp_path: Path):
    unbounded = {"talkers": 1_000_000, "admissions_per_hour": 1_000_000,
                 "services": 100_000, "service_admissions_per_hour": 100_000}
    # A database of its own (the limit counts per database), as the role makes them.
    db = "sitevis_unbounded"
    monitor.query(f"CREATE DATABASE {db}", auth=influx_role.ADMIN)
    monitor.query(f"GRANT WRITE ON {db} TO collector", auth=influx_role.ADMIN)
    health, log = run(monitor, quiet_link, tmp_path, unbounded, db)
    print(f"\nno budget: {len(flow_series(monitor, db))} flow series; {health}")
    assert len(flow_series(monitor, db)) <= 300
    # Refused points are found and counted (folded or, with no address-free row to
    # carry them, lost), never silently dropped and never retried for ever. The log
    # says so at once; the self-metrics report it with the next interval (the last
    # batch's outcome may come after the last interval's point).
    assert "refused" in log and "folded into other rows" in log, log[-2000:]
    assert "retrying" not in log


def test_a_restarted_collector_does_not_admit_a_second_set(quiet_link: HostLink,
                                                          monitor: InfluxServer,
                                                          tmp_path: Path):
    """Stopped and started again (same spool directory, as the unit's), the collector
    restores its admitted talkers and tokens (export/budget_state.py): new peers after the
    restart get only the few tokens refilled meanwhile, not a second initial fill, so a
    crash loop cannot multiply the day's series."""
    db = "sitevis_restart"
    monitor.query(f"CREATE DATABASE {db}", auth=influx_role.ADMIN)
    monitor.query(f"GRANT WRITE ON {db} TO collector", auth=influx_role.ADMIN)
    _, first_log = run(monitor, quiet_link, tmp_path, BUDGET, db, bursts=range(1))
    assert "series budget restored" not in first_log       # a first start
    assert (tmp_path / "spool" / "series-budget.json").exists()
    before = [s for s in flow_series(monitor, db) if "src=198.19." in s]
    _, log = run(monitor, quiet_link, tmp_path, BUDGET, db, bursts=range(1, BURSTS))
    after = [s for s in flow_series(monitor, db) if "src=198.19." in s]
    print(f"\ntalker series: {len(before)} before the restart, {len(after)} after")
    assert "series budget restored" in log, log[-2000:]
    assert len(before) >= BUDGET["talkers"] - 2
    # The refill of the seconds between the runs and during the second (0.1/s), plus
    # the one-token burst: never another BUDGET["talkers"].
    assert len(after) - len(before) <= 1 + 6


HEAVY = "198.19.251.1"


def scan_with_a_heavy_hitter(burst: int) -> list[tuple[bytes, int]]:
    """The churn burst (one- and two-packet peers), and from the second burst on a peer
    that carries most of the bytes."""
    frames = churn(burst)
    if burst:
        frames.append((f.eth(0x0800, f.ipv4(HEAVY, "198.18.0.2", 17,
                                            f.udp(5000, 7000, b"x" * 1200))), 300))
    return frames


@pytest.mark.parametrize("min_share", [0.001, 0.0])
def test_under_a_scan_only_a_heavy_hitter_replaces_an_admitted_talker(
        quiet_link: HostLink, monitor: InfluxServer, tmp_path: Path, min_share: float):
    """series.min_share on real parts: the first burst fills the set with probes, whose
    scores then decay fast (half-life 1 s); tokens come at 1/s. With the heavy-hitter rule
    no later probe takes a place and the heavy peer does; without it (the control), the
    probes take the places the tokens allow."""
    db = f"sitevis_scan{str(min_share).replace('.', '')}"
    monitor.query(f"CREATE DATABASE {db}", auth=influx_role.ADMIN)
    monitor.query(f"GRANT WRITE ON {db} TO collector", auth=influx_role.ADMIN)
    budget = {**BUDGET, "admissions_per_hour": 3600, "half_life": 1, "min_share": min_share}
    run(monitor, quiet_link, tmp_path, budget, db, bursts=range(BURSTS + 2),
        frames=scan_with_a_heavy_hitter, pause=1.5)
    first_burst = {f"198.19.{n // 250 % 250}.{n % 250 + 1}" for n in range(PEERS)}
    talkers = {s.split("src=")[1].split(",")[0] for s in flow_series(monitor, db)
               if "src=198.19." in s}
    late_probes = talkers - first_burst - {HEAVY}
    print(f"\nmin_share {min_share}: {len(talkers)} talker series, heavy peer "
          f"{'in' if HEAVY in talkers else 'out'}, {len(late_probes)} probes of later bursts")
    assert len(talkers & first_burst) >= BUDGET["talkers"] - 2     # the initial fill
    if min_share:
        assert HEAVY in talkers and not late_probes
    else:
        assert late_probes
