"""Two sitevis-collector processes on one host (instances.py): the second never blinds
the first. On an interface the first traces, the second refuses to start (one line
naming the first), or leaves an interface that appears later to the older instance;
on different interfaces both count. A SIGKILLed first instance is covered in test_agent
(its leftovers are removed by the next run, which then counts once)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sitevis_collector.hooks import instances
from sitevis_collector.hooks.tcx import tcx_available

from tests.harness.influx import InfluxServer
from tests.harness.netns import HostLink, create_link, destroy_link, own_links_pattern
from tests.integration.collector.collector_proc import (
    counts_once_and_leaves_nothing,
    flow_packets,
    our_filters,
    send_udp,
    start,
    stop,
    wait_attached,
    write_config,
)


def _config(tmp_path: Path, name: str, link: HostLink, influx_url: str, **extra) -> Path:
    home = tmp_path / name
    home.mkdir()
    return write_config(home, link, influx_url, **extra)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("sitevis-collector:")]


@pytest.mark.parametrize(("first", "second"), [("tcx", "clsact"), ("clsact", "tcx")])
def test_a_second_collector_on_the_same_interface_refuses_and_the_first_counts_on(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path,
        first: str, second: str):
    if "tcx" in (first, second) and not tcx_available():
        pytest.skip("this kernel has no tcx hooks (Linux < 6.6)")
    influxdb.query("CREATE DATABASE sitevis")
    one = start(_config(tmp_path, "one", host_link, influxdb.url, tc_attach=first))
    wait_attached(host_link.ifname, one)
    attached = our_filters(host_link.ifname)
    # Overlapping patterns: the second takes every link this worker makes, ours among
    # them (not another pytest worker's: that one's collector would be named too).
    two = start(_config(tmp_path, "two", host_link, influxdb.url, tc_attach=second,
                        interfaces={"include": [own_links_pattern()]}))
    _, err = two.communicate(timeout=120)
    assert two.returncode == 3, err
    [line] = _error_lines(err)
    assert line == (f"sitevis-collector: {host_link.ifname} is already traced by "
                    f"sitevis-collector pid {one.pid} (config {tmp_path}/one/collector.yml):"
                    " two collectors on one interface would count it twice; exclude it "
                    "from one of their configs")
    assert "Traceback" not in err
    assert our_filters(host_link.ifname) == attached  # untouched, not doubled
    counts_once_and_leaves_nothing(one, influxdb, host_link)


def test_collectors_on_different_interfaces_both_count(
        bcc_ready, host_link: HostLink, influxdb: InfluxServer, tmp_path: Path):
    influxdb.query("CREATE DATABASE sitevis")
    other = create_link()
    try:
        one = start(_config(tmp_path, "one", host_link, influxdb.url))
        wait_attached(host_link.ifname, one)
        two = start(_config(tmp_path, "two", other, influxdb.url, tc_attach="clsact"))
        wait_attached(other.ifname, two)
        send_udp(host_link.peer, host_link.ip, 50)
        send_udp(other.peer, other.ip, 70)
        for proc in (one, two):
            rc, err = stop(proc)
            assert rc == 0, err
        assert [r["packets"] for r in flow_packets(influxdb, host_link)] == [50]
        assert [r["packets"] for r in flow_packets(influxdb, other)] == [70]
    finally:
        destroy_link(other)


def _registered(pid: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the collector registered (compiled, about to attach)."""
    deadline = time.monotonic() + timeout
    while pid not in {i.pid for i in instances.live_instances()}:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the collector did not start"
        time.sleep(0.2)


def test_an_interface_both_would_take_goes_to_the_older_instance_only(
        bcc_ready, influxdb: InfluxServer, tmp_path: Path):
    """Patterns that overlap only on an interface created after both started."""
    influxdb.query("CREATE DATABASE sitevis")
    procs: list[subprocess.Popen] = []
    link: HostLink | None = None
    nothing_yet = HostLink("svh-none", "", None)  # type: ignore[arg-type]
    try:
        for name in ("older", "younger"):
            procs.append(start(_config(tmp_path, name, nothing_yet, influxdb.url,
                                       interfaces={"include": [own_links_pattern()]})))
            _registered(procs[-1].pid, procs[-1])
        time.sleep(1)
        link = create_link()
        wait_attached(link.ifname, procs[0], timeout=10)
        send_udp(link.peer, link.ip, 100)
        time.sleep(1.5)
        assert len(our_filters(link.ifname)) == 2  # one instance's, not two
        results = [stop(p) for p in procs]
        assert [rc for rc, _ in results] == [0, 0], results
        assert f"is traced by sitevis-collector pid {procs[0].pid}" in results[1][1]
        assert [r["packets"] for r in flow_packets(influxdb, link)] == [100]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        if link is not None:
            destroy_link(link)
