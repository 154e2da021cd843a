"""Counting: GSO, a full flow table, draining while traffic flows, non-linear skbs."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sitevis_collector.kernel.program import KernelSettings
from sitevis_collector.records import EGRESS, INGRESS, DrainResult, FlowKey

from tests.harness.netns import Host, HostPair
from tests.integration.collector import frames as f
from tests.integration.collector.kernel_kit import (
    TRAFGEN_FRAME_BYTES,
    iface_stat,
    observed,
    quiet,
    send_frames,
    settle,
    trafgen,
)

SERVER = """
import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", 7000))
s.listen()
print("ready", flush=True)
c, _ = s.accept()
n = 0
while (chunk := c.recv(1 << 20)):
    n += len(chunk)
print(n, flush=True)
c.close()
"""


@pytest.fixture
def quiet_pair(bcc_ready, host_pair: HostPair) -> Iterator[HostPair]:
    quiet(host_pair)
    yield host_pair


def _tcp_mib(host: Host) -> dict[str, int]:
    rows = [line.split() for line in host.exec("cat", "/proc/net/snmp").stdout.splitlines()
            if line.startswith("Tcp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:]), strict=True))


def _sum(result: DrainResult, **match) -> tuple[int, int]:
    rows = [c for k, c in result.flows.items()
            if all(getattr(k, name) == value for name, value in match.items())]
    return sum(c.packets for c in rows), sum(c.bytes for c in rows)


def test_tso_transfer_counts_wire_segments(quiet_pair: HostPair):
    left, right = quiet_pair.left, quiet_pair.right
    size = 16 << 20
    with observed(left) as lside, observed(right) as rside:
        server = right.popen(sys.executable, "-c", SERVER, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            lside.drain(), rside.drain()
            mib0, rx0 = _tcp_mib(left), (iface_stat(right, "rx_packets"),
                                         iface_stat(right, "rx_bytes"))
            left.exec(sys.executable, "-c", "import socket; s = socket.create_connection(("
                      f"'{right.ip}', 7000)); s.sendall(b'x' * {size}); s.close()")
            assert int(server.communicate(timeout=30)[0].strip()) == size
        finally:
            server.kill()
        settle(0.3)
        mib1, rx1 = _tcp_mib(left), (iface_stat(right, "rx_packets"),
                                     iface_stat(right, "rx_bytes"))
        sent, got = lside.drain(), rside.drain()

    segments = (mib1["OutSegs"] - mib0["OutSegs"]) + (mib1["RetransSegs"] - mib0["RetransSegs"])
    tcp_out, _ = _sum(sent, direction=EGRESS, proto="tcp", src=left.ip)
    tcp_in, tcp_in_bytes = _sum(got, direction=INGRESS, proto="tcp", src=left.ip)
    skbs = rx1[0] - rx0[0]
    # Every wire segment the sender's TCP sent, seen leaving and arriving.
    assert tcp_out == segments
    assert tcp_in == segments
    # The transfer really went as GSO super-packets (else this test proves nothing).
    assert skbs * 5 < tcp_in
    # Bytes as the receiving interface counted them, exactly (headers once per skb).
    assert got.totals[("veth0", INGRESS)].bytes == rx1[1] - rx0[1]
    assert got.totals[("veth0", INGRESS)].packets == _sum(got, direction=INGRESS)[0]
    assert tcp_in_bytes > size


def test_tiny_table_keeps_totals_exact_and_counts_overflow(quiet_pair: HostPair):
    flows, copies = 60, 3
    batch = [(f.eth(0x0800, f.ipv4("198.18.250.1", "198.18.250.2", 17,
                                   f.udp(20000 + i, 53, bytes(i % 7)))), copies)
             for i in range(flows)]
    # Non-IP frames last (the table is full by then): their overflow row keeps the
    # ethertype. 0x88b5 is the IEEE local experimental type: no stack answers it.
    batch.append((f.eth(0x88B5, bytes(50)), copies))
    packets = (flows + 1) * copies
    size = copies * sum(len(frame) for frame, _ in batch)
    with observed(quiet_pair.right, KernelSettings(table_size=8)) as right:
        right.drain()
        for _round in range(2):  # the drained table takes 8 new flows the next interval
            send_frames(quiet_pair.left, batch)
            settle()
            got = right.drain()
            assert {k: (c.packets, c.bytes) for k, c in got.totals.items()} == {
                ("veth0", INGRESS): (packets, size)}
            in_flows = sum(c.packets for c in got.flows.values())
            in_overflow = sum(c.packets for c in got.overflow.values())
            assert 0 < len(got.flows) <= 8
            assert in_flows + in_overflow == packets
            assert got.overflow_events == in_overflow > 0
            assert set(got.overflow) == {("veth0", INGRESS, "udp", 0x0800),
                                         ("veth0", INGRESS, "eth", 0x88B5)}
            assert (sum(c.bytes for c in got.flows.values())
                    + sum(c.bytes for c in got.overflow.values())) == size
            assert got.unaccounted == 0


def test_nonlinear_trafgen_frames_get_their_own_keys_and_drains_lose_nothing(
        quiet_pair: HostPair, tmp_path: Path):
    """trafgen (TX_RING: only the Ethernet header is linear) while we drain repeatedly."""
    left, right = quiet_pair.left, quiet_pair.right
    # More flows than one batch (4096) of the drain. Two sending CPUs and a tight drain
    # loop: draining the live table instead of swapping lost packets here in ~1 of 3 runs.
    count, flows = 400000, 5000
    with observed(left) as lside, observed(right) as rside:
        lside.drain(), rside.drain()
        tx0 = iface_stat(left, "tx_packets")
        results: list[tuple[DrainResult, DrainResult]] = []
        done = threading.Event()

        def drain_loop() -> None:
            while not done.is_set():
                results.append((lside.drain(), rside.drain()))

        drainer = threading.Thread(target=drain_loop)
        drainer.start()
        try:
            trafgen(left, tmp_path, count, src="198.18.250.1", dst="198.18.250.2",
                    sport=30000, flows=flows, dport=4789)
            settle(0.3)
        finally:
            done.set()
            drainer.join()
        results.append((lside.drain(), rside.drain()))
        sent_by_kernel = iface_stat(left, "tx_packets") - tx0
    assert len(results) > 3  # drained during the traffic, not only after it
    assert sent_by_kernel == count
    for side, direction in ((0, EGRESS), (1, INGRESS)):
        # Every single drain, taken while trafgen sends from two CPUs: its flows add up
        # to its totals exactly (epochs), not only the sum over the run.
        for pair in results:
            got = pair[side]
            rows = [*got.flows.values(), *got.overflow.values()]
            assert (sum(c.packets for c in rows), sum(c.bytes for c in rows)) == \
                (sum(c.packets for c in got.totals.values()),
                 sum(c.bytes for c in got.totals.values()))
        merged: dict[FlowKey, list[int]] = {}
        total = [0, 0]
        for pair in results:
            for key, c in pair[side].flows.items():
                acc = merged.setdefault(key, [0, 0])
                acc[0] += c.packets
                acc[1] += c.bytes
            for c in pair[side].totals.values():
                total[0] += c.packets
                total[1] += c.bytes
        per_flow = count // flows
        expected = {FlowKey("veth0", direction, 0x0800, "udp", "198.18.250.1", "198.18.250.2",
                            30000 + i, 4789): [per_flow, per_flow * TRAFGEN_FRAME_BYTES]
                    for i in range(flows)}
        assert merged == expected, direction
        assert total == [count, count * TRAFGEN_FRAME_BYTES]
