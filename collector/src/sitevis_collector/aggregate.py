"""One interval's DrainResult -> the points of DESIGN.md "What is stored".

Every point of an interval carries the interval's end as timestamp (packet samples carry
their own), and no two points share (measurement, tag set, timestamp), so a retried or
replayed write overwrites itself and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from sitevis_collector.config import Config
from sitevis_collector.lineproto import FieldValue, Point
from sitevis_collector.records import DrainResult, FlowCounters, FlowKey, PacketSample

FLOW = "flow"
IFACE = "iface"
PACKET = "packet"
SELF = "sitevis_collector"

PORTED = ("tcp", "udp", "sctp", "udplite", "dccp")
# Rows folded by top-N, and in-kernel overflow buckets, use these in place of addresses.
OTHER = "other"
OVERFLOW = "overflow"
FRAGMENT = "fragment"
EPHEMERAL = "ephemeral"


class KernelDelta(NamedTuple):
    """What the kernel's own interface counters moved by during the interval.

    Any (packets, bytes) tuple is accepted where a KernelDelta is expected, e.g. the
    difference of two attach.Counters.direction() readings.
    """

    packets: int
    bytes: int


def service_name(key: FlowKey, port_bound: int) -> str:
    """The server side of a flow, per DESIGN.md "Precise meanings"."""
    if key.proto == "eth":
        return f"eth/0x{key.ethertype:04x}"
    if key.proto in PORTED:
        if key.sport == 0 and key.dport == 0:
            # IPv4 fragments after the first carry no L4 header; never invent a port.
            return f"{key.proto}/{FRAGMENT}"
        port = min(key.sport, key.dport)
        return f"{key.proto}/{port}" if port < port_bound else f"{key.proto}/{EPHEMERAL}"
    # icmp, icmpv6, ip:<n>: no ports, the protocol is the service.
    return key.proto


# (proto, src, dst, service) within one (iface, dir) -> [packets, bytes, flows, tcp_flags].
# Plain lists: at 100k flows per interval a dataclass per row costs measurably more.
_RowKey = tuple[str, str, str, str]
_Row = list[int]
P, B, F, T = range(4)


def _flow_rows(result: DrainResult, port_bound: int
               ) -> dict[tuple[str, str], dict[_RowKey, _Row]]:
    groups: dict[tuple[str, str], dict[_RowKey, _Row]] = {}
    for key, c in result.flows.items():
        group = (key.ifname, key.direction)
        rows = groups.get(group)
        if rows is None:
            rows = groups[group] = {}
        row_key = (key.proto, key.src, key.dst, service_name(key, port_bound))
        row = rows.get(row_key)
        if row is None:
            rows[row_key] = [c.packets, c.bytes, 1, c.tcp_flags]
        else:
            row[P] += c.packets
            row[B] += c.bytes
            row[F] += 1
            row[T] |= c.tcp_flags
    return groups


def _top_n(rows: dict[_RowKey, _Row], n: int) -> dict[_RowKey, _Row]:
    """Keep the n largest rows by bytes; sum the rest into one 'other' row."""
    if len(rows) <= n:
        return rows
    # Ties broken by packets, then by the key, so the cut is deterministic.
    ranked = sorted(rows.items(), key=lambda kv: (-kv[1][B], -kv[1][P], kv[0]))
    kept = dict(ranked[:n])
    rest = [0, 0, 0, 0]
    for _, row in ranked[n:]:
        rest[P] += row[P]
        rest[B] += row[B]
        rest[F] += row[F]
        rest[T] |= row[T]
    kept[(OTHER, OTHER, OTHER, OTHER)] = rest
    return kept


def flow_points(result: DrainResult, cfg: Config, end_ns: int) -> list[Point]:
    site, box = cfg.site, cfg.box
    base = {"site": site, "box": box}
    groups = _flow_rows(result, cfg.service_port_bound)
    points: list[Point] = []
    for (ifname, direction), rows in sorted(groups.items()):
        # Row order within a group does not matter to InfluxDB; not sorting saves time.
        points.extend([
            Point(FLOW,
                  {"site": site, "box": box, "iface": ifname, "dir": direction,
                   "proto": proto, "src": src, "dst": dst, "service": service},
                  {"packets": packets, "bytes": nbytes, "flows": flows, "tcp_flags": flags},
                  end_ns)
            for (proto, src, dst, service), (packets, nbytes, flows, flags)
            in _top_n(rows, cfg.top_n).items()
        ])
    # Packets that found the flow table full: known only by protocol. Never folded, so
    # flow totals stay equal to iface totals.
    for (ifname, direction, proto), c in sorted(result.overflow.items()):
        points.append(Point(
            FLOW,
            {**base, "iface": ifname, "dir": direction, "proto": proto,
             "src": OVERFLOW, "dst": OVERFLOW, "service": OVERFLOW},
            {"packets": c.packets, "bytes": c.bytes, "flows": 0, "tcp_flags": c.tcp_flags},
            end_ns,
        ))
    return points


def iface_points(result: DrainResult, cfg: Config, end_ns: int,
                 kernel: Mapping[tuple[str, str], tuple[int, int]] | None = None
                 ) -> list[Point]:
    """Exact BPF totals per (iface, dir), beside the kernel's own counters when given.

    An interface the kernel counted but BPF did not (e.g. PACKET_QDISC_BYPASS senders skip
    TC egress) still gets a point, with coverage 0.0: that is how the gap shows.
    """
    kernel = kernel or {}
    overflow: dict[tuple[str, str], FlowCounters] = {}
    for (ifname, direction, _), c in result.overflow.items():
        o = overflow.setdefault((ifname, direction), FlowCounters())
        o.packets += c.packets
        o.bytes += c.bytes
    points: list[Point] = []
    for ifname, direction in sorted(set(result.totals) | set(kernel)):
        total = result.totals.get((ifname, direction), FlowCounters())
        fields: dict[str, FieldValue] = {"packets": total.packets, "bytes": total.bytes}
        over = overflow.get((ifname, direction))
        if over is not None:
            fields["overflow_packets"] = over.packets
            fields["overflow_bytes"] = over.bytes
        k = kernel.get((ifname, direction))
        if k is not None:
            k_packets, k_bytes = k
            fields["kernel_packets"] = k_packets
            fields["kernel_bytes"] = k_bytes
            if k_packets > 0:
                fields["coverage"] = total.packets / k_packets
        points.append(Point(
            IFACE,
            {"site": cfg.site, "box": cfg.box, "iface": ifname, "dir": direction},
            fields, end_ns,
        ))
    return points


def packet_points(samples: list[PacketSample], cfg: Config) -> list[Point]:
    """One point per sample at its own time (epoch ns); equal keys are moved apart by 1 ns."""
    last: dict[tuple[str, str, str], int] = {}
    points: list[Point] = []
    for s in sorted(samples, key=lambda s: s.timestamp_ns):
        series = (s.ifname, s.direction, s.proto)
        ts = s.timestamp_ns
        prev = last.get(series)
        if prev is not None and ts <= prev:
            ts = prev + 1
        last[series] = ts
        points.append(Point(
            PACKET,
            {"site": cfg.site, "box": cfg.box, "iface": s.ifname, "dir": s.direction,
             "proto": s.proto},
            {"src": s.src, "dst": s.dst, "sport": s.sport, "dport": s.dport,
             "length": s.length, "ttl": s.ttl, "tcp_flags": s.tcp_flags,
             "sample_rate": s.sample_rate},
            ts,
        ))
    return points


def self_point(result: DrainResult, cfg: Config, end_ns: int, flows_exported: int,
               stats: Mapping[str, FieldValue] | None = None) -> Point:
    """Collector health for this interval; `stats` adds writer counters, bpf_ns_per_packet."""
    fields: dict[str, FieldValue] = {
        "flows_drained": len(result.flows),
        "flows_exported": flows_exported,
        "overflow_events": result.overflow_events,
        "ringbuf_lost": result.ringbuf_lost,
        "truncated": result.truncated,
        "samples": len(result.samples),
    }
    # Loss counters the kernel side may add to DrainResult; written when present.
    for name in ("samples_rate_limited", "unaccounted"):
        value = getattr(result, name, None)
        if isinstance(value, int):
            fields[name] = value
    if stats:
        fields.update(stats)
    return Point(SELF, {"site": cfg.site, "box": cfg.box}, fields, end_ns)


def aggregate(result: DrainResult, cfg: Config, end_ns: int, *,
              kernel: Mapping[tuple[str, str], tuple[int, int]] | None = None,
              stats: Mapping[str, FieldValue] | None = None) -> list[Point]:
    """All points of one interval: flow, iface, packet, then sitevis_collector."""
    flows = flow_points(result, cfg, end_ns)
    return [
        *flows,
        *iface_points(result, cfg, end_ns, kernel),
        *packet_points(result.samples, cfg),
        self_point(result, cfg, end_ns, len(flows), stats),
    ]


@dataclass(slots=True)
class CounterDeltas:
    """Turns the writer's cumulative counters into per-interval increments.

    Gauges (names listed in `gauges`) pass through unchanged.
    """

    gauges: frozenset[str] = frozenset({"spool_bytes", "spool_files", "queue_bytes"})
    _prev: dict[str, int] = field(default_factory=dict)

    def update(self, counters: Mapping[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, value in counters.items():
            if name in self.gauges:
                out[name] = value
            else:
                out[name] = value - self._prev.get(name, 0)
                self._prev[name] = value
        return out
