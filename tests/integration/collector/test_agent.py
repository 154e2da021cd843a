"""sitevis-collector end to end: real BPF on a real veth, real influxd, real signals."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from sitevis_collector.hooks.tcx import tcx_available

from tests.harness.influx import InfluxServer
from tests.harness.netns import HostLink
from tests.harness.tools import tool
from tests.integration.collector.collector_proc import (
    FRAME_BYTES,
    PORT,
    counts_once_and_leaves_nothing,
    flow_packets,
    our_filters,
    send_udp,
    start,
    stop,
    wait_attached,
    wait_detached,
    write_config,
)


def test_run_ships_exact_counts_and_leaves_no_filter(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    influxdb.query("CREATE DATABASE sitevis")
    proc = start(write_config(tmp_path, host_link, influxdb.url))
    wait_attached(host_link.ifname, proc)
    send_udp(host_link.peer, host_link.ip, 500)
    time.sleep(2.5)  # at least two intervals
    send_udp(host_link.peer, host_link.ip, 250)
    rc, err = stop(proc)   # the last 250 are in the partial interval SIGTERM flushes
    assert rc == 0, err
    rows = flow_packets(influxdb, host_link)
    assert [(r["packets"], r["bytes"]) for r in rows] == [(750, 750 * FRAME_BYTES)]
    tags = influxdb.rows("SHOW TAG VALUES FROM flow WITH KEY = box", db="sitevis")
    assert [t["value"] for t in tags] == ["box 1"]
    iface = influxdb.rows(
        f"SELECT SUM(packets) AS p FROM iface WHERE iface = '{host_link.ifname}' "
        "AND dir = 'ingress'", db="sitevis")
    assert iface[0]["p"] >= 750
    health = influxdb.rows("SELECT COUNT(flows_exported) AS n FROM sitevis_collector",
                           db="sitevis")
    assert health[0]["n"] >= 2
    assert our_filters(host_link.ifname) == []


def test_killed_collector_leaves_stale_filters_that_the_next_run_replaces(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    """clsact mode: the kernel keeps a killed process's filters."""
    influxdb.query("CREATE DATABASE sitevis")
    config = write_config(tmp_path, host_link, influxdb.url, tc_attach="clsact")
    first = start(config)
    wait_attached(host_link.ifname, first)
    first.kill()
    first.communicate(timeout=30)
    stale = our_filters(host_link.ifname)
    assert len(stale) == 2  # left behind by SIGKILL (each line names its program id)

    second = start(config)
    wait_attached(host_link.ifname, second, replacing=stale)
    assert len(our_filters(host_link.ifname)) == 2  # replaced, not doubled
    counts_once_and_leaves_nothing(second, influxdb, host_link)
    # The clsact qdisc the killed one added (the veth had none) went with the second.
    assert not has_clsact(host_link.ifname)


def test_killed_collector_in_tcx_mode_leaves_nothing_and_the_next_run_counts_once(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    if not tcx_available():
        pytest.skip("this kernel has no tcx hooks (Linux < 6.6)")
    influxdb.query("CREATE DATABASE sitevis")
    config = write_config(tmp_path, host_link, influxdb.url)  # tc_attach: auto -> tcx
    first = start(config)
    wait_attached(host_link.ifname, first)
    assert all(line.startswith("tcx ") for line in our_filters(host_link.ifname))
    first.kill()
    first.communicate(timeout=30)
    wait_detached(host_link.ifname)

    second = start(config)
    wait_attached(host_link.ifname, second)
    assert len(our_filters(host_link.ifname)) == 2
    counts_once_and_leaves_nothing(second, influxdb, host_link)


def test_once_prints_one_interval_of_line_protocol(bcc_ready, host_link: HostLink,
                                                   tmp_path: Path):
    config = write_config(tmp_path, host_link, "http://127.0.0.1:9", interval=3)
    proc = subprocess.Popen([tool("sitevis-collector"), "once", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_attached(host_link.ifname, proc)
    send_udp(host_link.peer, host_link.ip, 42)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    flows = [line for line in out.splitlines()
             if line.startswith("flow,") and f"service=udp/{PORT}" in line
             and "dir=ingress" in line]
    assert len(flows) == 1
    assert "packets=42i" in flows[0] and f"bytes={42 * FRAME_BYTES}i" in flows[0]
    assert "box=box\\ 1" in flows[0]


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text("site: lab\ninterval: -1\ninfluxdb: {url: http://127.0.0.1:1, database: x}\n")
    proc = subprocess.run([tool("sitevis-collector"), "run", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sitevis-collector: {path}: interval:")
    assert "Traceback" not in proc.stderr


def test_check_passes_here_and_names_an_unreachable_influxdb(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    ok = subprocess.run([tool("sitevis-collector"), "check", "-c",
                         str(write_config(tmp_path, host_link, influxdb.url))],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout
    closed = tmp_path / "closed"
    closed.mkdir()
    bad = subprocess.run([tool("sitevis-collector"), "check", "-c",
                          str(write_config(closed, host_link, "http://127.0.0.1:9"))],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 4
    failing = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1 and "InfluxDB" in failing[0]




def test_top_shows_the_busiest_flow(bcc_ready, host_link: HostLink, tmp_path: Path):
    config = write_config(tmp_path, host_link, "http://127.0.0.1:9")
    proc = subprocess.Popen([tool("sitevis-collector"), "top", "-c", str(config), "--refresh", "2",
                             "--iterations", "1", "--rows", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "160"})
    wait_attached(host_link.ifname, proc)
    send_udp(host_link.peer, host_link.ip, 300)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = [line for line in out.splitlines() if f"udp/{PORT}" in line]
    assert len(rows) == 1
    assert host_link.peer.ip in rows[0] and "ingress" in rows[0]


def test_outage_and_restart_lose_nothing_and_duplicate_nothing(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    influxdb.query("CREATE DATABASE sitevis")
    config = write_config(tmp_path, host_link, influxdb.url)
    proc = start(config)
    wait_attached(host_link.ifname, proc)
    send_udp(host_link.peer, host_link.ip, 100)
    time.sleep(1.5)
    influxdb.stop()                       # InfluxDB goes away during traffic
    send_udp(host_link.peer, host_link.ip, 200)
    time.sleep(2.5)
    rc, err = stop(proc)                  # collector restarted while the server is away
    assert rc == 0, err
    assert list((tmp_path / "spool").iterdir()), "undelivered intervals must be on disk"

    proc = start(config)
    wait_attached(host_link.ifname, proc)
    send_udp(host_link.peer, host_link.ip, 300)
    time.sleep(1.5)
    influxdb.start()                      # back: the spool replays, then new data
    time.sleep(4)
    rc, err = stop(proc)
    assert rc == 0, err
    assert [r["packets"] for r in flow_packets(influxdb, host_link)] == [600]
    # Every interval arrived once: as many points as the collector made, no more.
    made = influxdb.rows("SELECT SUM(flows_exported) AS n FROM sitevis_collector",
                         db="sitevis")[0]["n"]
    stored = influxdb.rows("SELECT COUNT(packets) AS n FROM flow", db="sitevis")[0]["n"]
    assert stored == made
    assert list((tmp_path / "spool").glob("*.lp.gz")) == []


def test_cleanup_removes_what_a_killed_collector_left(
        bcc_ready, host_link: HostLink, tmp_path: Path):
    proc = start(write_config(tmp_path, host_link, "http://127.0.0.1:9", tc_attach="clsact"))
    wait_attached(host_link.ifname, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert len(our_filters(host_link.ifname)) == 2
    # Only our test interface: a collector running on this machine keeps its filters.
    out = subprocess.run([tool("sitevis-collector"), "cleanup", "--interface", host_link.ifname],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"{host_link.ifname}: removed 2 sitevis filter(s)" in out.stdout
    assert our_filters(host_link.ifname) == []
    assert not has_clsact(host_link.ifname)  # it added the qdisc; nothing else uses it


def has_clsact(ifname: str) -> bool:
    out = subprocess.run(["tc", "qdisc", "show", "dev", ifname], capture_output=True,
                         text=True, check=True).stdout
    return "clsact" in out


def _counts_once_after_one_restore(proc: subprocess.Popen, influxdb: InfluxServer,
                                   host_link: HostLink) -> None:
    """Send 120 packets to the restored hook, stop the collector: it logged and counted
    exactly one restore, and every packet reached InfluxDB once."""
    send_udp(host_link.peer, host_link.ip, 120)
    rc, err = stop(proc)
    assert rc == 0, err
    assert "our filters were removed by someone else; restoring" in err
    assert [r["packets"] for r in flow_packets(influxdb, host_link)] == [120]
    restored = influxdb.rows("SELECT SUM(filters_restored) AS n FROM sitevis_collector",
                             db="sitevis")
    assert restored[0]["n"] == 1


@pytest.mark.parametrize("tc_attach", ["clsact", "tcx"])
def test_filters_deleted_by_someone_else_are_restored(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path,
        tc_attach: str):
    if tc_attach == "tcx" and not tcx_available():
        pytest.skip("this kernel has no tcx hooks (Linux < 6.6)")
    influxdb.query("CREATE DATABASE sitevis")
    proc = start(write_config(tmp_path, host_link, influxdb.url, tc_attach=tc_attach))
    wait_attached(host_link.ifname, proc)
    if tc_attach == "clsact":
        for hook in ("ingress", "egress"):
            subprocess.run(["tc", "filter", "del", "dev", host_link.ifname, hook],
                           check=True)
    else:  # someone's forced cleanup detaches links it does not hold
        out = subprocess.run([tool("sitevis-collector"), "cleanup", "--force", "--interface",
                              host_link.ifname],
                             capture_output=True, text=True, timeout=60)
        assert "removed 2" in out.stdout, out.stderr
    assert our_filters(host_link.ifname) == []
    wait_attached(host_link.ifname, proc, timeout=5)   # within an interval (1 s)
    _counts_once_after_one_restore(proc, influxdb, host_link)


def _xdp_id(ifname: str) -> str | None:
    """The id of the XDP program on the interface, as `ip link` shows it (None: none)."""
    out = subprocess.run(["ip", "link", "show", "dev", ifname], capture_output=True,
                         text=True, check=True).stdout
    found = re.search(r"prog/xdp\S* id (\d+)", out)
    return found.group(1) if found else None


def _wait_xdp(ifname: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        prog = _xdp_id(ifname)
        if prog:
            return prog
        if proc.poll() is not None:
            raise AssertionError(f"collector exited early: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"no XDP program on {ifname} after {timeout}s")


def test_xdp_mode_is_listed_and_an_xdp_program_removed_by_someone_else_is_restored(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    influxdb.query("CREATE DATABASE sitevis")
    proc = start(write_config(tmp_path, host_link, influxdb.url, hook="xdp"))
    first = _wait_xdp(host_link.ifname, proc, timeout=60)
    listed = subprocess.run([tool("sitevis-collector"), "hooks", "--interface", host_link.ifname,
                             "--expect"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"{host_link.ifname}\tingress\txdp\tpid {proc.pid}"]

    subprocess.run(["ip", "link", "set", "dev", host_link.ifname, "xdp", "off"], check=True)
    assert _xdp_id(host_link.ifname) is None
    # Within an interval (1 s): the same loaded program is put back, not a new one.
    assert _wait_xdp(host_link.ifname, proc, timeout=5) == first
    _counts_once_after_one_restore(proc, influxdb, host_link)
    assert _xdp_id(host_link.ifname) is None  # removed at exit
