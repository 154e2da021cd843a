"""Aggregation semantics of DESIGN.md "What is stored" on hand-made DrainResults."""

from __future__ import annotations

import pytest
from sitevis_collector import __version__
from sitevis_collector.config import Config, parse_config
from sitevis_collector.export.aggregate import (
    CounterDeltas,
    KernelDelta,
    aggregate,
    flow_points,
    iface_points,
    iter_points,
    packet_points,
    service_name,
)
from sitevis_collector.export.lineproto import encode
from sitevis_collector.records import DrainResult, FlowCounters, FlowKey, PacketSample

END = 1_800_000_000_000_000_000


def config(**extra) -> Config:
    return parse_config({"site": "lab", "box": "b1",
                         "influxdb": {"url": "http://127.0.0.1:1", "database": "d"}, **extra})


def key(proto="tcp", src="10.0.0.1", dst="10.0.0.2", sport=51000, dport=443,
        ifname="eth0", direction="egress", ethertype=0x0800, vlan=0) -> FlowKey:
    return FlowKey(ifname, direction, ethertype, proto, src, dst, sport, dport, vlan)


def fc(packets: int, nbytes: int, flags: int = 0) -> FlowCounters:
    return FlowCounters(packets=packets, bytes=nbytes, tcp_flags=flags)


@pytest.mark.parametrize(("k", "bound", "expected"), [
    (key(sport=51000, dport=443), 32768, "tcp/443"),
    (key(sport=443, dport=51000), 32768, "tcp/443"),
    (key("udp", sport=53, dport=53), 32768, "udp/53"),
    (key("udp", sport=40000, dport=50000), 32768, "udp/ephemeral"),
    (key(sport=32767, dport=60000), 32768, "tcp/32767"),
    (key(sport=32768, dport=60000), 32768, "tcp/ephemeral"),
    (key(sport=8080, dport=50000), 1024, "tcp/ephemeral"),
    (key(sport=1023, dport=50000), 1024, "tcp/1023"),
    (key(sport=65535, dport=65535), 65536, "tcp/65535"),
    (key("udp", sport=0, dport=0), 32768, "udp/fragment"),
    (key("tcp", sport=0, dport=0), 32768, "tcp/fragment"),
    (key("icmp", sport=0, dport=0), 32768, "icmp"),
    (key("icmpv6", src="fe80::1", dst="ff02::1", sport=0, dport=0, ethertype=0x86DD),
     32768, "icmpv6"),
    (key("ip:47", sport=0, dport=0), 32768, "ip:47"),
    (key("eth", src="", dst="", sport=0, dport=0, ethertype=0x0806), 32768, "eth/0x0806"),
    (key("eth", src="", dst="", sport=0, dport=0, ethertype=0x88CC), 32768, "eth/0x88cc"),
    (key("eth", src="", dst="", sport=0, dport=0, ethertype=0x0042), 32768, "eth/0x0042"),
])
def test_service_names(k, bound, expected):
    assert service_name(k, bound) == expected
    # Aggregation names rows on its own fast path: the same names.
    [point] = flow_points(DrainResult(flows={k: fc(1, 60)}), config(service_port_bound=bound),
                          END)
    assert point.tags["service"] == expected


def rows_of(points):
    return {(p.tags["iface"], p.tags["dir"], p.tags["proto"], p.tags["src"], p.tags["dst"],
             p.tags["service"]): dict(p.fields) for p in points}


def test_keys_with_the_same_tag_set_merge():
    result = DrainResult(flows={
        key(sport=51000): fc(10, 1000, 0x02),
        key(sport=51001): fc(5, 500, 0x10),
        key(sport=51002, vlan=7): fc(1, 64, 0x01),
        key(sport=51003, dport=80): fc(3, 300, 0x18),
    })
    rows = rows_of(flow_points(result, config(), END))
    assert rows == {
        ("eth0", "egress", "tcp", "10.0.0.1", "10.0.0.2", "tcp/443"):
            {"packets": 16, "bytes": 1564, "flows": 3, "tcp_flags": 0x13},
        ("eth0", "egress", "tcp", "10.0.0.1", "10.0.0.2", "tcp/80"):
            {"packets": 3, "bytes": 300, "flows": 1, "tcp_flags": 0x18},
    }


def test_directions_and_interfaces_stay_apart():
    result = DrainResult(flows={
        key(direction="egress"): fc(1, 100),
        key(direction="ingress"): fc(2, 200),
        key(ifname="eth1"): fc(3, 300),
    })
    rows = rows_of(flow_points(result, config(), END))
    assert sorted((k[0], k[1], v["bytes"]) for k, v in rows.items()) == [
        ("eth0", "egress", 100), ("eth0", "ingress", 200), ("eth1", "egress", 300)]


def test_top_n_keeps_the_largest_and_folds_the_rest_exactly():
    flows = {key(src=f"10.0.1.{i}"): fc(i, 1000 * i, 1 << (i % 8)) for i in range(1, 11)}
    flows[key(ifname="eth1", src="10.9.9.9")] = fc(1, 1)     # another group, not folded
    result = DrainResult(flows=flows)
    rows = rows_of(flow_points(result, config(top_n=3), END))
    eth0 = {k: v for k, v in rows.items() if k[0] == "eth0"}
    kept = sorted(k[3] for k in eth0 if k[3] != "other")
    assert kept == ["10.0.1.10", "10.0.1.8", "10.0.1.9"]
    # The rest are folded, addresses gone, their (admitted) service kept.
    other = eth0[("eth0", "egress", "tcp", "other", "other", "tcp/443")]
    assert other == {"packets": sum(range(1, 8)), "bytes": 1000 * sum(range(1, 8)),
                     "flows": 7, "tcp_flags": 0xFE}
    assert len(eth0) == 4
    # Sums over the stored rows equal the sums over the drained keys.
    for field in ("packets", "bytes"):
        assert sum(v[field] for v in rows.values()) == sum(
            getattr(c, field) for c in flows.values())
    assert sum(v["flows"] for v in rows.values()) == len(flows)
    assert ("eth1", "egress", "tcp", "10.9.9.9", "10.0.0.2", "tcp/443") in rows


def test_exactly_n_rows_are_not_folded():
    flows = {key(src=f"10.0.1.{i}"): fc(1, 100) for i in range(5)}
    rows = rows_of(flow_points(DrainResult(flows=flows), config(top_n=5), END))
    assert len(rows) == 5 and all(k[3] != "other" for k in rows)


def test_overflow_buckets_are_flow_rows_and_flow_totals_equal_iface_totals():
    result = DrainResult(
        flows={key(): fc(10, 1000), key("udp", dport=53): fc(4, 400)},
        overflow={("eth0", "egress", "tcp", 0x0800): fc(7, 700, 0x10),
                  ("eth0", "egress", "udp", 0x0800): fc(1, 90),
                  ("eth0", "egress", "eth", 0x0806): fc(2, 120)},
        totals={("eth0", "egress"): fc(24, 2310)},
    )
    cfg = config(top_n=1)
    points = flow_points(result, cfg, END)
    rows = rows_of(points)
    assert rows[("eth0", "egress", "tcp", "overflow", "overflow", "overflow/ipv4")] == {
        "packets": 7, "bytes": 700, "flows": 0, "tcp_flags": 0x10}
    # A non-IP flow's service is its ethertype: known even in the overflow bucket.
    assert rows[("eth0", "egress", "eth", "overflow", "overflow", "eth/0x0806")] == {
        "packets": 2, "bytes": 120, "flows": 0, "tcp_flags": 0}
    assert sum(v["bytes"] for v in rows.values()) == 2310
    assert sum(v["packets"] for v in rows.values()) == 24
    [iface] = iface_points(result, cfg, END)
    assert iface.fields["overflow_packets"] == 10 and iface.fields["overflow_bytes"] == 910


def _series_keys(points) -> list:
    return [(p.measurement, tuple(sorted(p.tags.items())), p.time_ns) for p in points]


def test_overflow_rows_of_both_address_families_never_share_a_series_key():
    """IPv4 and IPv6 buckets of one protocol (and odd ethertypes) are separate rows: with
    one tag set InfluxDB would keep one of them and flow totals would undercount."""
    overflow = {("eth0", "ingress", proto, family): fc(i + 1, 100 * (i + 1))
                for i, (proto, family) in enumerate(
                    (p, f) for p in ("udp", "tcp", "icmp", "ip:47") for f in (0x0800, 0x86DD))}
    overflow[("eth0", "ingress", "eth", 0x88B5)] = fc(5, 300)
    overflow[("eth0", "ingress", "eth", 0x0806)] = fc(2, 120)
    flows = {key(src=f"10.0.0.{i}", direction="ingress"): fc(1, 60) for i in range(4)}
    flows[key(src="2001:db8::1", dst="2001:db8::2", direction="ingress",
              ethertype=0x86DD)] = fc(3, 200)
    packets = sum(c.packets for c in [*overflow.values(), *flows.values()])
    size = sum(c.bytes for c in [*overflow.values(), *flows.values()])
    result = DrainResult(flows=flows, overflow=overflow,
                         totals={("eth0", "ingress"): fc(packets, size)})
    points = aggregate(result, config(top_n=2), END)
    keys = _series_keys(points)
    assert len(keys) == len(set(keys))
    flow = [p for p in points if p.measurement == "flow"]
    [iface] = [p for p in points if p.measurement == "iface"]
    assert sum(p.fields["packets"] for p in flow) == iface.fields["packets"] == packets
    assert sum(p.fields["bytes"] for p in flow) == iface.fields["bytes"] == size
    services = {p.tags["service"] for p in flow if p.tags["src"] == "overflow"}
    assert services == {"overflow/ipv4", "overflow/ipv6", "eth/0x88b5", "eth/0x0806"}


def test_packets_no_table_could_take_are_one_untracked_row_so_flows_equal_totals():
    result = DrainResult(flows={key(): fc(10, 1000)},
                         overflow={("eth0", "egress", "eth", 0x1234): fc(5, 300)},
                         totals={("eth0", "egress"): fc(18, 1500),
                                 ("eth1", "ingress"): fc(2, 120)}, unaccounted=5)
    rows = rows_of(flow_points(result, config(), END))
    assert rows[("eth0", "egress", "other", "overflow", "overflow", "overflow/untracked")] \
        == {"packets": 3, "bytes": 200, "flows": 0, "tcp_flags": 0}
    assert rows[("eth1", "ingress", "other", "overflow", "overflow", "overflow/untracked")] \
        == {"packets": 2, "bytes": 120, "flows": 0, "tcp_flags": 0}
    # Nothing missing: no such row.
    exact = DrainResult(flows={key(): fc(10, 1000)}, totals={("eth0", "egress"): fc(10, 1000)})
    assert len(flow_points(exact, config(), END)) == 1


def test_non_ip_frames_have_no_address_tags_on_the_wire():
    result = DrainResult(flows={key("eth", src="", dst="", sport=0, dport=0,
                                    ethertype=0x0806): fc(2, 120)})
    [point] = flow_points(result, config(), END)
    assert encode(point) == (
        f"flow,box=b1,dir=egress,iface=eth0,proto=eth,service=eth/0x0806,site=lab "
        f"packets=2i,bytes=120i,flows=1i,tcp_flags=0i {END}")


def test_iface_points_with_kernel_counters_and_coverage():
    result = DrainResult(totals={("eth0", "ingress"): fc(90, 9000),
                                 ("eth0", "egress"): fc(50, 5000)})
    kernel = {("eth0", "ingress"): KernelDelta(100, 9400),
              ("eth0", "egress"): KernelDelta(0, 0),
              ("veth9", "egress"): KernelDelta(10_000, 640_000)}
    points = {(p.tags["iface"], p.tags["dir"]): p.fields
              for p in iface_points(result, config(), END, kernel)}
    assert points[("eth0", "ingress")] == {"packets": 90, "bytes": 9000, "kernel_packets": 100,
                                           "kernel_bytes": 9400, "coverage": 0.9}
    # No kernel packets: coverage is undefined, so it is left out rather than invented.
    assert points[("eth0", "egress")] == {"packets": 50, "bytes": 5000, "kernel_packets": 0,
                                          "kernel_bytes": 0}
    # Seen by the kernel only (e.g. a qdisc-bypass sender): shows up with coverage 0.
    assert points[("veth9", "egress")] == {"packets": 0, "bytes": 0, "kernel_packets": 10_000,
                                           "kernel_bytes": 640_000, "coverage": 0.0}
    assert all(isinstance(f["packets"], int) and not isinstance(f["packets"], bool)
               for f in points.values())


def test_kernel_counters_may_be_plain_tuples():
    result = DrainResult(totals={("eth0", "ingress"): fc(3, 180)})
    [p] = iface_points(result, config(), END, {("eth0", "ingress"): (4, 240)})
    assert p.fields == {"packets": 3, "bytes": 180, "kernel_packets": 4, "kernel_bytes": 240,
                        "coverage": 0.75}


def test_iface_points_without_kernel_counters():
    result = DrainResult(totals={("eth0", "ingress"): fc(1, 60)})
    [p] = iface_points(result, config(), END)
    assert p.tags == {"site": "lab", "box": "b1", "iface": "eth0", "dir": "ingress"}
    assert p.fields == {"packets": 1, "bytes": 60}
    assert p.time_ns == END


def sample(ts: int, ifname="eth0", direction="ingress", proto="tcp", sport=1) -> PacketSample:
    return PacketSample(ifname, direction, proto, "10.0.0.1", "10.0.0.2", sport, 443, 60, 64,
                        0x02, 1000, ts)


def test_packet_samples_get_unique_timestamps_per_series():
    samples = [sample(500, sport=3), sample(100, sport=1), sample(100, sport=2),
               sample(101, sport=4), sample(100, proto="udp", sport=5),
               sample(100, ifname="eth1", sport=6)]
    points = packet_points(samples, config())
    by_sport = {p.fields["sport"]: p for p in points}
    assert {s: p.time_ns for s, p in by_sport.items()} == {
        1: 100, 2: 101, 4: 102, 3: 500, 5: 100, 6: 100}
    assert by_sport[1].tags == {"site": "lab", "box": "b1", "iface": "eth0",
                                "dir": "ingress", "proto": "tcp"}
    assert by_sport[1].fields == {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": 1,
                                  "dport": 443, "length": 60, "ttl": 64, "tcp_flags": 2,
                                  "sample_rate": 1000}


def test_every_point_of_an_interval_is_unique_and_stamped_with_its_end():
    flows = {key(src=f"10.0.1.{i}", sport=50000 + i): fc(i, 100 * i) for i in range(1, 50)}
    flows.update({key("udp", src=f"10.0.2.{i}", direction="ingress"): fc(1, 80)
                  for i in range(30)})
    result = DrainResult(
        flows=flows,
        totals={("eth0", "egress"): fc(1225, 122500), ("eth0", "ingress"): fc(30, 2400)},
        overflow={("eth0", "ingress", "udp", 0x0800): fc(3, 240)},
        samples=[sample(END - 5), sample(END - 5), sample(END - 5, direction="egress")],
        ringbuf_lost=4, overflow_events=3, truncated=2,
    )
    points = aggregate(result, config(top_n=10), END,
                       kernel={("eth0", "egress"): KernelDelta(1225, 122500)},
                       stats={"points_written": 7, "bpf_ns_per_packet": 210.5})
    keys = [(p.measurement, tuple(sorted(p.tags.items())), p.time_ns) for p in points]
    assert len(keys) == len(set(keys))
    assert {p.time_ns for p in points if p.measurement != "packet"} == {END}
    assert sorted(p.time_ns for p in points if p.measurement == "packet") == [
        END - 5, END - 5, END - 4]
    [me] = [p for p in points if p.measurement == "sitevis_collector"]
    assert me.tags == {"site": "lab", "box": "b1"}
    flow_count = sum(1 for p in points if p.measurement == "flow")
    assert flow_count == 10 + 1 + 10 + 1 + 1        # two groups of top 10 + other, overflow
    expected = {"flows_drained": 79, "flows_exported": flow_count,
                "overflow_events": 3, "ringbuf_lost": 4, "truncated": 2,
                "samples": 3, "points_written": 7, "bpf_ns_per_packet": 210.5,
                # the series budget's figures: all 79 admitted in a first interval, the
                # 59 rows past the top 10 of their group folded
                "talkers_admitted": 79, "talker_admissions": 79,
                "services_admitted": 2, "service_admissions": 2, "rows_folded": 59,
                "version": __version__}
    optional = {"samples_rate_limited", "unaccounted"}     # newer DrainResult fields
    assert {k: v for k, v in me.fields.items() if k not in optional} == expected
    for p in points:
        encode(p)       # every point is writable


def test_counter_deltas_turn_cumulative_counters_into_per_interval_ones():
    deltas = CounterDeltas()
    assert deltas.update({"points_written": 10, "spool_bytes": 500}) == {
        "points_written": 10, "spool_bytes": 500}
    assert deltas.update({"points_written": 25, "spool_bytes": 0}) == {
        "points_written": 15, "spool_bytes": 0}


def test_iter_points_consuming_the_flows_gives_the_same_points():
    flows = {key(src=f"10.0.{i % 3}.{i}", dport=i % 7 or 1): fc(i, 60 * i, i & 0x3F)
             for i in range(1, 200)}
    flows[key("eth", src="", dst="", sport=0, dport=0, ethertype=0x0806)] = fc(2, 120)
    flows[key(ifname="eth1")] = fc(1, 60)

    def result() -> DrainResult:
        return DrainResult(flows=dict(flows), totals={("eth0", "egress"): fc(1, 1)},
                           overflow={("eth0", "egress", "tcp", 0x0800): fc(3, 180)})

    cfg = config(top_n=20)
    expected = aggregate(result(), cfg, END, stats={"x": 1})
    consumed = result()
    streamed = list(iter_points(consumed, cfg, END, stats={"x": 1}, consume=True))
    assert consumed.flows == {}
    # Row order within an (iface, dir) group may differ; the set of points may not.
    assert sorted(map(encode, streamed)) == sorted(map(encode, expected))
    assert streamed[-1].fields["flows_drained"] == len(flows)
