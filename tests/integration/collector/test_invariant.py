"""The stored invariant, on a real collector and a real influxd: for every interval,
interface and direction, the flow rows add up to the iface point, packets and bytes,
whatever the mix (IPv4, IPv6, non-IP, VLAN, malformed; top-N `other` rows; overflow
buckets of one protocol in both address families) — and the iface totals are what
crossed the wire."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.influx import InfluxServer
from tests.harness.netns import HostLink
from tests.integration.collector.collector_proc import start, stop, wait_attached, write_config
from tests.integration.collector.kernel_kit import send_frames, send_raw
from tests.integration.collector.traffic_mix import (
    frames_and_bytes,
    malformed,
    mixed_flows,
    reaches_tc_ingress,
)

Key = tuple[str, str]  # (time, dir)


@pytest.fixture
def quiet_link(bcc_ready, host_link: HostLink) -> Iterator[HostLink]:
    """No traffic of the kernels' own on the link (IPv6 off: no ND/MLD): every frame on
    it is one a test sent."""
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{host_link.ifname}.disable_ipv6=1"],
                   check=True)
    host_link.peer.exec("sysctl", "-qw", "net.ipv6.conf.veth0.disable_ipv6=1")
    yield host_link


def _sums(influx: InfluxServer, measurement: str, ifname: str) -> dict[Key, tuple[int, int]]:
    out: dict[Key, list[int]] = {}
    for row in influx.rows(f"SELECT packets, bytes, dir FROM {measurement} "
                           f"WHERE iface = '{ifname}'", db="sitevis"):
        acc = out.setdefault((row["time"], row["dir"]), [0, 0])
        acc[0] += row["packets"]
        acc[1] += row["bytes"]
    # An interval in which BPF saw nothing still has its iface point (kernel counters).
    return {k: (p, b) for k, (p, b) in out.items() if p or b}


def _run_and_check(influx: InfluxServer, link: HostLink, tmp_path: Path,
                   ingress: list, egress: list, **config) -> list[dict]:
    influx.query("CREATE DATABASE sitevis")
    proc = start(write_config(tmp_path, link, influx.url, **config))
    wait_attached(link.ifname, proc)
    time.sleep(1.2)  # start in an interval of its own
    for _ in range(3):  # spread over several intervals, drains meet traffic
        send_frames(link.peer, ingress)
        send_raw(link.ifname, egress)
        time.sleep(0.4)
    rc, err = stop(proc)
    assert rc == 0, err
    assert "Traceback" not in err

    flows, ifaces = _sums(influx, "flow", link.ifname), _sums(influx, "iface", link.ifname)
    intervals = Counter(direction for _, direction in ifaces)
    print(f"\n{intervals['ingress']} + {intervals['egress']} intervals with traffic checked")
    assert flows == ifaces  # every interval and direction, packets and bytes
    arrived = [(frame, n) for frame, n in ingress if reaches_tc_ingress(frame)]
    for direction, sent in (("ingress", arrived), ("egress", egress)):
        packets, size = frames_and_bytes(sent)
        got = [v for (_, d), v in ifaces.items() if d == direction]
        assert (sum(p for p, _ in got), sum(b for _, b in got)) == (3 * packets, 3 * size)
    return influx.rows(f"SELECT * FROM flow WHERE iface = '{link.ifname}'", db="sitevis")


def test_flow_rows_add_up_to_iface_totals_when_a_small_table_overflows(
        quiet_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    mix = mixed_flows(600)
    rows = _run_and_check(influxdb, quiet_link, tmp_path, mix, mixed_flows(400, seed=3),
                          flow_table_size=16, top_n=5)
    overflow = {(r["time"], r["dir"], r["proto"], r["service"]) for r in rows
                if r["src"] == "overflow"}
    # Buckets of one protocol in both families, in one interval: the rows that used to
    # share a series key (and overwrite each other).
    both = {(t, d, p) for t, d, p, s in overflow if s == "overflow/ipv4"} & \
           {(t, d, p) for t, d, p, s in overflow if s == "overflow/ipv6"}
    assert both, overflow
    assert any(s.startswith("eth/0x") for *_, s in overflow)
    assert any(r["src"] == "other" for r in rows)  # top-N folded the rest


def test_malformed_frames_keep_totals_exact_and_flows_equal_to_them(
        quiet_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    bad = malformed(12_000)
    packets, _ = frames_and_bytes(bad)
    print(f"\n{packets} malformed frames each way, three times")
    _run_and_check(influxdb, quiet_link, tmp_path, bad + mixed_flows(200),
                   malformed(12_000, seed=5), flow_table_size=64)
    health = influxdb.rows("SELECT SUM(truncated) AS t, SUM(unaccounted) AS u "
                           "FROM sitevis_collector", db="sitevis")[0]
    untracked = influxdb.rows("SELECT SUM(packets) AS p FROM flow WHERE service = "
                              "'overflow/untracked'", db="sitevis")
    # Random ethertypes fill the overflow table too: those packets are counted (the
    # self-metric says how many) and written as the untracked row, not lost.
    assert health["t"] > 0
    assert health["u"] > 0 and untracked[0]["p"] == health["u"]
