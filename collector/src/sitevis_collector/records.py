"""What the kernel side hands to the user side each interval (the contract between them).

kernel side (bpf loader + drain) -> DrainResult -> aggregate -> line protocol -> delivery
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

INGRESS = "ingress"
EGRESS = "egress"


class FlowKey(NamedTuple):
    """One in-kernel flow table key, decoded. Addresses are text (IPv4/IPv6).

    A NamedTuple, not a frozen dataclass: 100k are made and hashed every interval,
    and construction and hashing stay in C.
    """

    ifname: str
    direction: str          # INGRESS | EGRESS
    ethertype: int          # after VLAN tags, e.g. 0x0800
    proto: str              # "tcp" | "udp" | "icmp" | "icmpv6" | "ip:<n>" | "eth"
    src: str                # "" when the frame is not IP
    dst: str
    sport: int              # 0 when there is no L4 header (ICMP, later fragments, non-IP)
    dport: int
    vlan: int = 0           # outermost VLAN id, 0 when untagged


@dataclass(slots=True)
class FlowCounters:
    packets: int = 0        # wire frames (GSO segments counted)
    bytes: int = 0          # frame bytes as on the wire without FCS, VLAN tags included
    tcp_flags: int = 0      # OR of every TCP flag byte seen
    first_ns: int = 0
    last_ns: int = 0


@dataclass(frozen=True, slots=True)
class PacketSample:
    """One sampled packet header from the ring buffer."""

    ifname: str
    direction: str
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    length: int
    ttl: int
    tcp_flags: int
    sample_rate: int
    timestamp_ns: int


@dataclass(slots=True)
class DrainResult:
    """Everything drained from the kernel for one interval."""

    flows: dict[FlowKey, FlowCounters] = field(default_factory=dict)
    # Exact per-interface totals (ifname, direction) -> counters, overflow included.
    totals: dict[tuple[str, str], FlowCounters] = field(default_factory=dict)
    # Packets that found the flow table full, per (ifname, direction, proto, ethertype).
    overflow: dict[tuple[str, str, str, int], FlowCounters] = field(default_factory=dict)
    samples: list[PacketSample] = field(default_factory=list)
    ringbuf_lost: int = 0
    overflow_events: int = 0
    truncated: int = 0
    # Samples the in-kernel rate limit dropped (a loss like ringbuf_lost).
    samples_rate_limited: int = 0
    # Packets neither the totals nor the overflow table could take (should be 0).
    unaccounted: int = 0
