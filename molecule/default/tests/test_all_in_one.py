"""All-in-one box after `site.yml`: services, files, locked-down InfluxDB, BPF attached,
and traffic made inside the box stored with the right tags within a few intervals."""

from __future__ import annotations

import time

import pytest
from diagnostics import COLLECTOR, influx_rows, read_user, write_status

PORT = 9999
SENT = 300
PAYLOAD = 100
FRAME = 14 + 20 + 8 + PAYLOAD


@pytest.mark.parametrize("service", ["influxdb", "sitevis-collector"])
def test_services_are_active_and_enabled(host, service):
    unit = host.service(service)
    assert unit.is_running and unit.is_enabled


@pytest.mark.parametrize(("path", "mode", "group"), [
    ("/etc/sitevis", 0o750, "root"),
    ("/etc/sitevis/collector.yml", 0o640, "root"),
    ("/etc/sitevis/influxdb-password", 0o600, "root"),
    ("/etc/influxdb/influxdb.conf", 0o644, "root"),   # holds no secret
])
def test_config_files_and_permissions(host, path, mode, group):
    f = host.file(path)
    assert f.exists and f.user == "root" and f.group == group and f.mode == mode


WRITE_URL = "http://127.0.0.1:8086/write?db=sitevis"


def test_influxdb_enforces_auth(host):
    assert write_status(host, WRITE_URL, "probe v=1i", auth=None) == 401


def test_grafana_user_reads_but_cannot_write(host):
    assert influx_rows(host, "SHOW MEASUREMENTS", auth=read_user())
    assert write_status(host, WRITE_URL, "probe v=1i", auth=read_user()) == 403


def test_our_bpf_programs_are_on_the_box_interfaces(host):
    # Docker shares this machine's kernel (>= 6.6): tc_attach auto takes tcx links.
    out = host.check_output(f"{COLLECTOR} hooks --interface eth0")
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[:3] for line in lines] == [["eth0", "ingress", "tcx"], ["eth0", "egress", "tcx"]]
    # The fourth column names the running collector that holds them.
    assert all(line[3].startswith("pid ") for line in lines), out


@pytest.fixture(scope="module")
def traffic(host):
    """UDP from a network namespace inside the box to the box, over a veth the
    collector must pick up by itself."""
    host.run("ip netns del svt; ip link del tv0")
    host.check_output(
        "ip netns add svt && ip link add tv0 type veth peer name tv1 netns svt && "
        "ip addr add 198.18.200.1/30 dev tv0 && ip link set tv0 up && "
        "ip -n svt addr add 198.18.200.2/30 dev tv1 && ip -n svt link set tv1 up")
    deadline = time.monotonic() + 10
    while "tv0\tingress" not in host.check_output(f"{COLLECTOR} hooks --interface tv0"):
        assert time.monotonic() < deadline, "the collector did not attach to tv0 within 10 s"
        time.sleep(0.2)
    host.check_output(
        "ip netns exec svt python3 -c \"import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"[s.sendto(b'x' * {PAYLOAD}, ('198.18.200.1', {PORT})) for _ in range({SENT})]\"")
    sent_at = time.monotonic()
    yield sent_at
    host.run("ip netns del svt")


def test_traffic_is_stored_with_the_right_tags(host, traffic):
    query = ("SELECT SUM(packets) AS p, SUM(bytes) AS b FROM flow WHERE iface = 'tv0' "
             f"AND dir = 'ingress' AND service = 'udp/{PORT}' AND src = '198.18.200.2' "
             "AND dst = '198.18.200.1' GROUP BY site, box, proto")
    deadline = traffic + 2 + 8          # interval (2 s) + a few seconds
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = influx_rows(host, query)
        if rows and rows[0]["p"] == SENT:
            break
        time.sleep(0.5)
    hostname = host.check_output("hostname")
    assert [(r["site"], r["box"], r["proto"], r["p"], r["b"]) for r in rows] == [
        ("molecule", hostname, "udp", SENT, SENT * FRAME)]


def test_collector_self_metrics_are_present(host):
    rows = influx_rows(host, "SELECT LAST(flows_exported), LAST(interfaces_attached) "
                             "FROM sitevis_collector WHERE time > now() - 1m")
    assert rows and rows[0]["last_1"] >= 1
