"""One interval's DrainResult -> the points of DESIGN.md "What is stored".

Every point of an interval carries the interval's end as timestamp (packet samples carry
their own), and no two points share (measurement, tag set, timestamp), so a retried or
replayed write overwrites itself and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from sitevis_collector import __version__
from sitevis_collector.config import Config
from sitevis_collector.export.budget import OTHER, PORTED, Row, RowKey, SeriesBudget
from sitevis_collector.export.lineproto import FieldValue, Point
from sitevis_collector.records import DrainResult, FlowCounters, FlowKey, PacketSample

FLOW = "flow"
IFACE = "iface"
PACKET = "packet"
SELF = "sitevis_collector"

# In-kernel overflow buckets use this in place of addresses (folded rows: budget.py).
OVERFLOW = "overflow"
FRAGMENT = "fragment"
EPHEMERAL = "ephemeral"
UNTRACKED = "overflow/untracked"  # neither a flow nor an overflow bucket could take them


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
_RowKey = RowKey
_Row = Row
P, B, F, T = range(4)


def _flow_rows(result: DrainResult, port_bound: int, consume: bool = False
               ) -> dict[tuple[str, str], dict[_RowKey, _Row]]:
    """Group flows into rows; consume=True empties result.flows on the way, so each
    drained flow is freed as soon as it is in a row (memory at 100k flows)."""
    groups: dict[tuple[str, str], dict[_RowKey, _Row]] = {}
    flows = result.flows
    items = _popping(flows) if consume else flows.items()
    # service_name() inlined for ported protocols, its strings made once per port
    # (100k calls per interval cost measurably more).
    by_port: dict[str, dict[int, str]] = {}
    for key, c in items:
        ifname, direction, _, proto, src, dst, sport, dport, _ = key
        group = (ifname, direction)
        rows = groups.get(group)
        if rows is None:
            rows = groups[group] = {}
        if proto in PORTED and (sport or dport):
            port = sport if sport < dport else dport
            names = by_port.get(proto)
            if names is None:
                names = by_port[proto] = {-1: f"{proto}/{EPHEMERAL}"}
            service = names.get(port if port < port_bound else -1)
            if service is None:
                service = names[port] = f"{proto}/{port}"
        else:
            service = service_name(key, port_bound)
        row_key = (proto, src, dst, service)
        row = rows.get(row_key)
        if row is None:
            rows[row_key] = [c.packets, c.bytes, 1, c.tcp_flags]
        else:
            row[P] += c.packets
            row[B] += c.bytes
            row[F] += 1
            row[T] |= c.tcp_flags
    return groups


def _popping(flows: dict[FlowKey, FlowCounters]) -> Iterator[tuple[FlowKey, FlowCounters]]:
    popitem = flows.popitem
    while flows:
        yield popitem()


def new_budget(cfg: Config) -> SeriesBudget:
    return SeriesBudget(cfg.series, cfg.interval)


def flow_points(result: DrainResult, cfg: Config, end_ns: int,
                budget: SeriesBudget | None = None) -> list[Point]:
    """The flow points of one interval; without a budget, a fresh one (a first interval)."""
    groups = _flow_rows(result, cfg.service_port_bound)
    return list(_flow_points(result, cfg, end_ns, groups, budget or new_budget(cfg)))


def _flow_points(result: DrainResult, cfg: Config, end_ns: int,
                 groups: dict[tuple[str, str], dict[_RowKey, _Row]],
                 budget: SeriesBudget) -> Iterator[Point]:
    site, box = cfg.site, cfg.box
    base = {"site": site, "box": box}
    written: dict[tuple[str, str], list[int]] = {}  # (iface, dir) -> [packets, bytes]
    # Talkers the budget admitted keep their addresses; every other row is folded.
    for (ifname, direction), rows in budget.fold(groups, cfg.top_n):
        sums = written.setdefault((ifname, direction), [0, 0])
        # Row order within a group does not matter to InfluxDB; not sorting saves time.
        for (proto, src, dst, service), (packets, nbytes, flows, flags) in rows.items():
            sums[0] += packets
            sums[1] += nbytes
            yield Point(FLOW,
                        {"site": site, "box": box, "iface": ifname, "dir": direction,
                         "proto": proto, "src": src, "dst": dst, "service": service},
                        {"packets": packets, "bytes": nbytes, "flows": flows,
                         "tcp_flags": flags},
                        end_ns)
    # Packets that found the flow table full: known only by protocol and ethertype.
    # Never folded, so flow totals stay equal to iface totals; one row per distinct tag
    # set (overflow_service keeps IPv4 and IPv6 apart), summed if two buckets share one.
    for (ifname, direction, proto, service), (packets, nbytes, flags) in \
            sorted(overflow_rows(result).items()):
        sums = written.setdefault((ifname, direction), [0, 0])
        sums[0] += packets
        sums[1] += nbytes
        yield Point(
            FLOW,
            {**base, "iface": ifname, "dir": direction, "proto": proto,
             "src": OVERFLOW, "dst": OVERFLOW, "service": service},
            {"packets": packets, "bytes": nbytes, "flows": 0, "tcp_flags": flags},
            end_ns,
        )
    # Packets that found the overflow table full too (e.g. a flood of random
    # ethertypes): counted in the exact totals only, so their row is the difference.
    for (ifname, direction), total in sorted(result.totals.items()):
        packets, nbytes = written.get((ifname, direction), (0, 0))
        if total.packets > packets:
            yield Point(
                FLOW,
                {**base, "iface": ifname, "dir": direction, "proto": OTHER,
                 "src": OVERFLOW, "dst": OVERFLOW, "service": UNTRACKED},
                {"packets": total.packets - packets, "bytes": total.bytes - nbytes,
                 "flows": 0, "tcp_flags": 0},
                end_ns,
            )


# Address family of an overflow bucket, from its ethertype (all the bucket knows).
_FAMILIES = {0x0800: "ipv4", 0x86DD: "ipv6"}


def overflow_service(proto: str, ethertype: int) -> str:
    """The service tag of an overflow row: `eth/0x<type>` for non-IP frames, else
    `overflow/ipv4` or `overflow/ipv6`, so buckets of one protocol in two address
    families never share a series key (InfluxDB would keep only one of them)."""
    if proto == "eth":
        return f"eth/0x{ethertype:04x}"
    return f"{OVERFLOW}/{_FAMILIES.get(ethertype, f'0x{ethertype:04x}')}"


def overflow_rows(result: DrainResult) -> dict[tuple[str, str, str, str], tuple[int, int, int]]:
    """(iface, dir, proto, service) -> (packets, bytes, tcp_flags) of the overflow buckets."""
    rows: dict[tuple[str, str, str, str], tuple[int, int, int]] = {}
    for (ifname, direction, proto, ethertype), c in result.overflow.items():
        key = (ifname, direction, proto, overflow_service(proto, ethertype))
        packets, nbytes, flags = rows.get(key, (0, 0, 0))
        rows[key] = (packets + c.packets, nbytes + c.bytes, flags | c.tcp_flags)
    return rows


def iface_points(result: DrainResult, cfg: Config, end_ns: int,
                 kernel: Mapping[tuple[str, str], tuple[int, int]] | None = None
                 ) -> list[Point]:
    """Exact BPF totals per (iface, dir), beside the kernel's own counters when given.

    An interface the kernel counted but BPF did not (e.g. PACKET_QDISC_BYPASS senders skip
    TC egress) still gets a point, with coverage 0.0: that is how the gap shows.
    """
    kernel = kernel or {}
    overflow: dict[tuple[str, str], FlowCounters] = {}
    for (ifname, direction, *_), c in result.overflow.items():
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
               stats: Mapping[str, FieldValue] | None = None, *,
               flows_drained: int | None = None) -> Point:
    """Collector health for this interval; `stats` adds writer counters, bpf_ns_per_packet.
    flows_drained defaults to len(result.flows)."""
    fields: dict[str, FieldValue] = {
        "flows_drained": len(result.flows) if flows_drained is None else flows_drained,
        "flows_exported": flows_exported,
        "overflow_events": result.overflow_events,
        "ringbuf_lost": result.ringbuf_lost,
        "truncated": result.truncated,
        "samples": len(result.samples),
        "version": __version__,     # which collector the box runs (the portal shows it)
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
              stats: Mapping[str, FieldValue] | None = None,
              budget: SeriesBudget | None = None) -> list[Point]:
    """All points of one interval: flow, iface, packet, then sitevis_collector."""
    return list(iter_points(result, cfg, end_ns, kernel=kernel, stats=stats, budget=budget))


def iter_points(result: DrainResult, cfg: Config, end_ns: int, *,
                kernel: Mapping[tuple[str, str], tuple[int, int]] | None = None,
                stats: Mapping[str, FieldValue] | None = None,
                consume: bool = False,
                budget: SeriesBudget | None = None) -> Iterator[Point]:
    """The points of aggregate(), one at a time, so a consumer can encode each and let it
    go: an interval of 100k flows never holds 100k points at once. consume=True also
    empties result.flows while grouping (the caller must not need the flows after).
    budget: the box's series budget, kept across intervals (None: a fresh one)."""
    drained = len(result.flows)
    budget = budget or new_budget(cfg)
    groups = _flow_rows(result, cfg.service_port_bound, consume)
    exported = 0
    for point in _flow_points(result, cfg, end_ns, groups, budget):
        exported += 1
        yield point
    del groups
    yield from iface_points(result, cfg, end_ns, kernel)
    yield from packet_points(result.samples, cfg)
    yield self_point(result, cfg, end_ns, exported, {**budget.last, **(stats or {})},
                     flows_drained=drained)


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
