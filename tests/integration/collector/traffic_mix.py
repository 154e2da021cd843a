"""Frame sets for the stress tests: many distinct flows of every family the parser knows,
and malformed frames of every kind an operator's wire can carry. Every byte is chosen
here (frames.py), seeded, so a failure replays."""

from __future__ import annotations

import random
import struct

from tests.integration.collector import frames as f

Frames = list[tuple[bytes, int]]  # (frame, copies)
ETH_HEADER = 14
VLAN_TPIDS = (0x8100, 0x88A8)


def _v4(i: int) -> str:
    return f"198.18.{100 + i // 250}.{1 + i % 250}"


def _v6(i: int) -> str:
    return f"2001:db8:5::{i + 1:x}"


def mixed_flows(flows: int, seed: int = 7) -> Frames:
    """`flows` distinct flows over IPv4 and IPv6 (udp, tcp, icmp/icmpv6, GRE = ip:47),
    some VLAN-tagged, plus non-IP frames (ARP, 0x88b5): a table smaller than `flows`
    overflows with buckets of one protocol in both address families."""
    rnd = random.Random(seed)
    out: Frames = []
    for i in range(flows):
        kind = i % 8
        src4, dst4, src6, dst6 = _v4(i), _v4(i + 7), _v6(i), _v6(i + 7)
        payload = bytes(rnd.randrange(0, 40))
        if kind == 0:
            frame = f.eth(0x0800, f.ipv4(src4, dst4, 17, f.udp(20000 + i, 53, payload)))
        elif kind == 1:
            frame = f.eth(0x86DD, f.ipv6(src6, dst6, 17, f.udp(20000 + i, 53, payload)))
        elif kind == 2:
            frame = f.eth(0x0800, f.ipv4(src4, dst4, 6, f.tcp(40000 + i, 443, f.TCP_SYN)))
        elif kind == 3:
            frame = f.eth(0x86DD, f.ipv6(src6, dst6, 6, f.tcp(40000 + i, 443, f.TCP_ACK)))
        elif kind == 4:
            frame = f.eth(0x0800, f.ipv4(src4, dst4, 1, f.icmp_echo()))
        elif kind == 5:
            frame = f.eth(0x86DD, f.ipv6(src6, dst6, 58, f.icmp_echo(128)))
        elif kind == 6:
            frame = f.eth(0x0800, f.ipv4(src4, dst4, 47, payload),
                          tags=((0x8100, 100 + i % 7),))
        else:
            frame = f.eth(0x86DD, f.ipv6(src6, dst6, 47, payload))
        out.append((frame, 1 + i % 3))
    out.append((f.eth(0x88B5, bytes(50)), 5))
    out.append((f.eth(0x0806, f.arp_request(_v4(1), _v4(2))), 3))
    return out


def _valid_samples() -> list[bytes]:
    return [
        f.eth(0x0800, f.ipv4(_v4(1), _v4(2), 17, f.udp(1000, 53, b"q" * 20))),
        f.eth(0x0800, f.ipv4(_v4(1), _v4(2), 6, f.tcp(1000, 80, f.TCP_SYN), options=bytes(8))),
        f.eth(0x86DD, f.ipv6(_v6(1), _v6(2), 0, f.ext_header(6) + f.tcp(1000, 80, 2))),
        f.eth(0x86DD, f.ipv6(_v6(1), _v6(2), 44, f.frag_header(17, 0, True)
                             + f.udp(1000, 53))),
        f.eth(0x0800, f.ipv4(_v4(1), _v4(2), 17, f.udp(1000, 53)),
              tags=((0x88A8, 10), (0x8100, 20))),
    ]


def malformed(count: int, seed: int = 11) -> Frames:
    """At least `count` malformed frames: every valid sample truncated at every byte
    (every header boundary included), bogus IPv4/IPv6 lengths and IHLs, IPv6
    extension-header chains longer than the parser walks, VLAN stacks deeper than it
    unwraps, odd ethertypes, then random bytes. Never shorter than the Ethernet
    header: the kernel refuses to send those."""
    rnd = random.Random(seed)
    out: Frames = []
    for sample in _valid_samples():
        out += [(sample[:cut], 1) for cut in range(ETH_HEADER, len(sample))]
    base = f.ipv4(_v4(1), _v4(2), 17, f.udp(1000, 53, b"x" * 16))
    for ihl in (0, 1, 4, 15):
        out.append((f.eth(0x0800, bytes([0x40 | ihl]) + base[1:]), 3))
    for total in (0, 19, 20, 0xFFFF):
        out.append((f.eth(0x0800, base[:2] + struct.pack("!H", total) + base[4:]), 3))
    out.append((f.eth(0x0800, bytes([0x60]) + base[1:]), 3))  # version 6 in an IPv4 frame
    v6 = f.ipv6(_v6(1), _v6(2), 17, f.udp(1000, 53))
    for plen in (0, 3, 0xFFFF):
        out.append((f.eth(0x86DD, v6[:4] + struct.pack("!H", plen) + v6[6:]), 3))
    chain = b"".join(f.ext_header(60) for _ in range(12)) + f.udp(1000, 53)
    out.append((f.eth(0x86DD, f.ipv6(_v6(1), _v6(2), 60, chain)), 3))
    for depth in (3, 6, 12):
        tags = tuple((VLAN_TPIDS[d % 2], d) for d in range(depth))
        out.append((f.eth(0x0800, base, tags=tags), 3))
    for ethertype in (0x0000, 0x05DC, 0x0600, 0x8847, 0x88CC, 0xFFFF):
        out.append((f.eth(ethertype, bytes(rnd.randrange(0, 64))), 3))
    while sum(n for _, n in out) < count:
        out.append((f.eth(rnd.choice((0x0800, 0x86DD, 0x8100, rnd.randrange(1 << 16))),
                          rnd.randbytes(rnd.randrange(0, 200))), 1))
    return out


def frames_and_bytes(frames: Frames) -> tuple[int, int]:
    return sum(n for _, n in frames), sum(len(frame) * n for frame, n in frames)


def reaches_tc_ingress(frame: bytes) -> bool:
    """False for a frame the receiving kernel drops before TC ingress: an outer VLAN
    header cut short (802.1Q/802.1ad with fewer than 6 bytes after the Ethernet
    header: skb_vlan_untag cannot pull it). The interface's rx counter has it, so it
    shows as coverage < 1; no TC program can see it (XDP could)."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    return not (ethertype in VLAN_TPIDS and len(frame) < ETH_HEADER + 6)
