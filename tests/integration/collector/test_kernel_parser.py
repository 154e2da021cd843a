"""Every parser branch of bpf/sitevis.c with crafted frames on a real veth.

Frames go out of the left end through a raw AF_PACKET socket; the same flows must
appear, exactly, at the left end's TC egress and the right end's TC ingress (and at
XDP ingress in the XDP variant). Each case is sent a different number of times so
two cases swapped in the table cannot pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sitevis_collector.kernel.program import KernelSettings
from sitevis_collector.records import EGRESS, INGRESS, FlowKey

from tests.harness.netns import HostPair
from tests.integration.collector import frames as f
from tests.integration.collector.foreign import ForeignFilter
from tests.integration.collector.kernel_kit import observed, quiet, send_frames, settle

A4, B4 = "198.18.250.1", "198.18.250.2"
A6, B6 = "2001:2::1", "2001:2::2"  # RFC 5180 benchmarking range, the v6 twin of 198.18/15
UDP, TCP, GRE = 17, 6, 47
HOP, ROUTING, FRAG, DSTOPTS = 0, 43, 44, 60


def _later_fragment_payload() -> bytes:
    # Bytes that would read as ports 4444 -> 4445 if the parser invented an L4 header.
    return bytes.fromhex("115c115d") + b"later-fragment-data-"


# (name, frames of one flow, proto, ethertype, src, dst, sport, dport, vlan, tcp_flags,
#  truncated frames per copy)
CASES = [
    ("ipv4_udp", [f.eth(0x0800, f.ipv4(A4, B4, UDP, f.udp(1111, 53)))],
     "udp", 0x0800, A4, B4, 1111, 53, 0, 0, 0),
    ("ipv4_options", [f.eth(0x0800, f.ipv4(A4, B4, UDP, f.udp(2222, 2223),
                                           options=bytes([1, 1, 1, 1, 1, 1, 1, 0])))],
     "udp", 0x0800, A4, B4, 2222, 2223, 0, 0, 0),
    ("tcp_syn_psh_fin", [f.eth(0x0800, f.ipv4(A4, B4, TCP, f.tcp(3333, 80, flags)))
                         for flags in (f.TCP_SYN, f.TCP_PSH | f.TCP_ACK,
                                       f.TCP_FIN | f.TCP_ACK)],
     "tcp", 0x0800, A4, B4, 3333, 80, 0, 0x1B, 0),
    ("tcp_rst_urg_ece_cwr", [f.eth(0x0800, f.ipv4(A4, B4, TCP, f.tcp(
        3334, 80, f.TCP_RST | f.TCP_URG | f.TCP_ECE | f.TCP_CWR)))],
     "tcp", 0x0800, A4, B4, 3334, 80, 0, 0xE4, 0),
    ("icmp", [f.eth(0x0800, f.ipv4(A4, B4, 1, f.icmp_echo(8)))],
     "icmp", 0x0800, A4, B4, 0, 0, 0, 0, 0),
    ("ipv4_first_fragment", [f.eth(0x0800, f.ipv4(A4, B4, UDP, f.udp(4444, 4445, bytes(16)),
                                                  more_fragments=True))],
     "udp", 0x0800, A4, B4, 4444, 4445, 0, 0, 0),
    ("ipv4_later_fragment", [f.eth(0x0800, f.ipv4(B4, A4, UDP, _later_fragment_payload(),
                                                  frag_offset=24))],
     "udp", 0x0800, B4, A4, 0, 0, 0, 0, 0),
    ("ipv4_gre", [f.eth(0x0800, f.ipv4(A4, B4, GRE, bytes(8)))],
     "ip:47", 0x0800, A4, B4, 0, 0, 0, 0, 0),
    ("ipv6_ext_headers", [f.eth(0x86DD, f.ipv6(A6, B6, HOP, f.ext_header(ROUTING)
                                               + f.ext_header(DSTOPTS, 14)
                                               + f.ext_header(UDP) + f.udp(5555, 5556)))],
     "udp", 0x86DD, A6, B6, 5555, 5556, 0, 0, 0),
    ("ipv6_first_fragment", [f.eth(0x86DD, f.ipv6(A6, B6, FRAG, f.frag_header(UDP, 0, True)
                                                  + f.udp(6666, 6667, bytes(16))))],
     "udp", 0x86DD, A6, B6, 6666, 6667, 0, 0, 0),
    ("ipv6_later_fragment", [f.eth(0x86DD, f.ipv6(B6, A6, FRAG, f.frag_header(UDP, 16, False)
                                                  + _later_fragment_payload()))],
     "udp", 0x86DD, B6, A6, 0, 0, 0, 0, 0),
    # Nine destination-options headers: past the walk's bound of eight.
    ("ipv6_ext_bound", [f.eth(0x86DD, f.ipv6(A6, A6, DSTOPTS, b"".join(
        f.ext_header(DSTOPTS) for _ in range(8)) + f.ext_header(UDP) + f.udp(1, 2)))],
     "ip:60", 0x86DD, A6, A6, 0, 0, 0, 0, 0),
    ("icmpv6", [f.eth(0x86DD, f.ipv6(A6, B6, 58, f.icmp_echo(128)))],
     "icmpv6", 0x86DD, A6, B6, 0, 0, 0, 0, 0),
    ("arp", [f.eth(0x0806, f.arp_request(A4, B4))], "eth", 0x0806, "", "", 0, 0, 0, 0, 0),
    ("other_ethertype", [f.eth(0x88B5, b"local experimental ethertype payload")],
     "eth", 0x88B5, "", "", 0, 0, 0, 0, 0),
    ("vlan_8021q", [f.eth(0x0800, f.ipv4(A4, B4, UDP, f.udp(7777, 7778)),
                          tags=((0x8100, 100),))],
     "udp", 0x0800, A4, B4, 7777, 7778, 100, 0, 0),
    ("qinq_8021ad", [f.eth(0x86DD, f.ipv6(A6, B6, UDP, f.udp(8888, 8889)),
                           tags=((0x88A8, 200), (0x8100, 300)))],
     "udp", 0x86DD, A6, B6, 8888, 8889, 200, 0, 0),
    ("truncated_ipv4_header", [f.eth(0x0800, f.ipv4(A4, B4, UDP, b"")[:10])],
     "eth", 0x0800, "", "", 0, 0, 0, 0, 1),
    ("truncated_tcp_header", [f.eth(0x0800, f.ipv4(A4, B4, TCP, b"")
                                    + f.tcp(9999, 443, f.TCP_SYN)[:8])],
     "tcp", 0x0800, A4, B4, 0, 0, 0, 0, 1),
    ("truncated_ipv6_header", [f.eth(0x86DD, f.ipv6(A6, B6, UDP, b"")[:20])],
     "eth", 0x86DD, "", "", 0, 0, 0, 0, 1),
    ("truncated_ipv6_ext", [f.eth(0x86DD, f.ipv6(A6, B6, HOP, b"\x11"))],
     "ip:0", 0x86DD, A6, B6, 0, 0, 0, 0, 1),
]


def _expected(direction: str, cases=CASES) -> tuple[dict, int]:
    flows, truncated = {}, 0
    for copies, (_name, frames, proto, ethertype, src, dst, sport, dport, vlan, flags,
                 trunc) in enumerate(cases, start=1):
        key = FlowKey("veth0", direction, ethertype, proto, src, dst, sport, dport, vlan)
        flows[key] = (copies * len(frames), copies * sum(len(fr) for fr in frames), flags)
        truncated += copies * len(frames) * trunc
    return flows, truncated


def _send_all(pair: HostPair, cases=CASES) -> None:
    send_frames(pair.left, [(fr, copies) for copies, case in enumerate(cases, start=1)
                            for fr in case[1]])


@pytest.fixture
def quiet_pair(bcc_ready, host_pair: HostPair) -> Iterator[HostPair]:
    quiet(host_pair)
    yield host_pair


@pytest.mark.parametrize("percpu", [False, True], ids=["shared_table", "percpu_table"])
def test_every_branch_counted_exactly_on_egress_and_ingress(quiet_pair: HostPair, percpu: bool):
    settings = KernelSettings(percpu_flows=percpu)
    with observed(quiet_pair.left, settings) as left, \
            observed(quiet_pair.right, settings) as right:
        left.drain(), right.drain()  # anything from before: not part of the test
        start = time.time_ns()
        _send_all(quiet_pair)
        settle()
        end = time.time_ns()
        sent, got_right = left.drain(), right.drain()

    for direction, result in ((EGRESS, sent), (INGRESS, got_right)):
        expected, truncated = _expected(direction)
        got = {k: (c.packets, c.bytes, c.tcp_flags) for k, c in result.flows.items()}
        assert got == expected, direction
        assert result.truncated == truncated
        packets = sum(p for p, _, _ in expected.values())
        size = sum(b for _, b, _ in expected.values())
        assert {k: (c.packets, c.bytes) for k, c in result.totals.items()} == {
            ("veth0", direction): (packets, size)}
        assert result.overflow == {} and result.overflow_events == 0
        for c in result.flows.values():
            assert start <= c.first_ns <= c.last_ns <= end


def test_vlan_tag_in_skb_vlan_tci_counts_as_on_the_wire(quiet_pair: HostPair):
    """The tag travels in skb->vlan_tci (offloaded) on egress and ingress.

    This kernel has no 8021q module, so a foreign filter running before ours pushes
    the tag with bpf_skb_vlan_push, which puts it in vlan_tci as a VLAN device would.
    Ours are clsact filters here, so that the foreign clsact filter (priority 1) runs
    first; tcx programs would run before every clsact filter.
    """
    left = quiet_pair.left
    frame = f.eth(0x0800, f.ipv4(A4, B4, UDP, f.udp(5353, 53, b"v" * 100)))
    count = 25
    with observed(left, tc_attach="clsact") as lside, \
            observed(quiet_pair.right, tc_attach="clsact") as rside:
        pusher = ForeignFilter(left, lside.ifindex, "egress", "foreign_vlan_push", 100)
        try:
            lside.drain(), rside.drain()
            send_frames(left, [(frame, count)])
            settle()
            sent, got = lside.drain(), rside.drain()
        finally:
            pusher.close()
    wire = len(frame) + 4
    for direction, result in ((EGRESS, sent), (INGRESS, got)):
        key = FlowKey("veth0", direction, 0x0800, "udp", A4, B4, 5353, 53, 100)
        assert {k: (c.packets, c.bytes) for k, c in result.flows.items()} == {
            key: (count, count * wire)}
        assert result.totals[("veth0", direction)].bytes == count * wire


def test_xdp_ingress_counts_the_same_as_tc(quiet_pair: HostPair):
    with observed(quiet_pair.right, KernelSettings(hook="xdp")) as right:
        right.drain()
        _send_all(quiet_pair)
        settle()
        got = right.drain()
    expected, truncated = _expected(INGRESS)
    assert {k: (c.packets, c.bytes, c.tcp_flags) for k, c in got.flows.items()} == expected
    assert got.truncated == truncated
