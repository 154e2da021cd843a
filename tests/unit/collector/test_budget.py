"""The series budget: talkers admitted by weight at a bounded rate, the rest folded exactly."""

from __future__ import annotations

import random

from sitevis_collector.config import parse_config
from sitevis_collector.export.admission import Admission
from sitevis_collector.export.aggregate import flow_points, new_budget
from sitevis_collector.records import DrainResult, FlowCounters, FlowKey

END = 1_800_000_000_000_000_000


def config(series=None, **extra):
    return parse_config({"site": "lab", "box": "b1", "interval": 10,
                         "influxdb": {"url": "http://127.0.0.1:1", "database": "d"},
                         **({"series": series} if series else {}), **extra})


def flow(src, dst="198.18.0.1", proto="tcp", dport=443, ifname="eth0", sport=50000,
         ethertype=0x0800):
    return FlowKey(ifname, "ingress", ethertype, proto, src, dst, sport, dport, 0)


def series_of(points):
    return {tuple(sorted(p.tags.items())) for p in points}


def test_a_churning_peer_set_creates_no_more_series_than_the_budget_says():
    """An internet-facing box: 300 recurring peers and 700 new ones every interval for
    three simulated hours. Detailed (address) series stay within talkers + rate x hours +
    burst, folded series within the folded bound, and every interval's sums are exact."""
    cfg = config({"talkers": 50, "admissions_per_hour": 60})
    budget = new_budget(cfg)
    rng = random.Random(7)
    recurring = [f"198.19.{i // 250}.{i % 250}" for i in range(300)]
    seen, detailed = set(), set()
    hours = 3
    intervals = hours * 360
    for t in range(intervals):
        peers = recurring + [f"10.{rng.randrange(256)}.{rng.randrange(256)}."
                             f"{rng.randrange(256)}" for _ in range(700)]
        flows = {flow(p, dport=rng.choice((443, 80, 53, 22, rng.randrange(1, 30000)))):
                 FlowCounters(packets=2, bytes=rng.randrange(100, 5000)) for p in peers}
        sent_p = sum(c.packets for c in flows.values())
        sent_b = sum(c.bytes for c in flows.values())
        points = flow_points(DrainResult(flows=flows), cfg, END + t, budget)
        assert sum(p.fields["packets"] for p in points) == sent_p
        assert sum(p.fields["bytes"] for p in points) == sent_b
        keys = series_of(points)
        seen |= keys
        detailed |= {k for k in keys if dict(k)["src"] != "other"}
    burst = 10          # ten minutes of 60/h
    assert len(detailed) <= 50 + 60 * hours + burst
    assert budget.talkers.admissions <= 50 + 60 * hours + burst
    # Folded: services (100, 10 more an hour, a burst of 2) and the folded `tcp/other`,
    # times one address class (other) squared.
    assert len(seen - detailed) <= 100 + 10 * hours + 2 + 1


def test_a_steady_heavy_talker_is_kept_and_a_newcomer_must_be_much_heavier():
    adm: Admission[str] = Admission(2, 3600, hysteresis=2.0, half_life=600, interval=10)
    adm.update([("a", 1000), ("b", 900)])
    assert set(adm.admitted) == {"a", "b"}
    # c is a bit heavier than b for a while: not enough to take b's place.
    for _ in range(50):
        adm.update([("a", 1000), ("b", 900), ("c", 1200)])
    assert set(adm.admitted) == {"a", "b"} and adm.evictions == 0
    # b goes quiet and c keeps going: c's score passes twice b's and it is admitted.
    for _ in range(200):
        adm.update([("a", 1000), ("c", 1200)])
    assert set(adm.admitted) == {"a", "c"} and adm.evictions == 1


def test_admission_rate_is_bounded_by_tokens():
    adm: Admission[int] = Admission(10, 36, half_life=600, interval=10)   # 0.1 per interval
    adm.update([(i, 100) for i in range(10)])       # the initial fill
    assert len(adm) == 10
    admitted_before = adm.admissions
    for t in range(100):                            # 1000 s: at most 10 refill tokens
        adm.update([(1000 + t, 10**9)])
    assert adm.admissions - admitted_before <= 10


def test_folded_rows_keep_bounded_tags_prefix_classes_and_admitted_services():
    cfg = config({"talkers": 1, "services": 1, "prefixes": {"site": ["198.18.0.0/15"],
                                                            "v6lab": ["2001:db8::/32"]}})
    flows = {
        flow("203.0.113.9", dport=443): FlowCounters(10, 10_000),   # the admitted talker
        flow("203.0.113.10", dport=443): FlowCounters(1, 100),      # folded, service kept
        flow("198.18.5.5", dport=8080): FlowCounters(1, 60),        # service folded
        flow("2001:db8::5", "2001:db8::1", ethertype=0x86DD, dport=22): FlowCounters(1, 80),
        flow("203.0.113.11", proto="ip:47", sport=0, dport=0): FlowCounters(1, 70),
        flow("", "", proto="eth", sport=0, dport=0, ethertype=0x88B5): FlowCounters(1, 64),
    }
    rows = {(p.tags["proto"], p.tags["src"], p.tags["dst"], p.tags["service"]):
            p.fields["bytes"] for p in flow_points(DrainResult(flows=flows), cfg, END)}
    assert rows == {
        ("tcp", "203.0.113.9", "198.18.0.1", "tcp/443"): 10_000,
        ("tcp", "other", "site", "tcp/443"): 100,
        ("tcp", "site", "site", "tcp/other"): 60,
        ("tcp", "v6lab", "v6lab", "tcp/other"): 80,
        ("ip:other", "other", "site", "ip/other"): 70,
        ("eth", "", "", "eth/other"): 64,
    }


def test_no_talkers_means_no_addresses_at_all():
    cfg = config({"talkers": 0})
    flows = {flow(f"203.0.113.{i}"): FlowCounters(1, 100) for i in range(20)}
    points = flow_points(DrainResult(flows=flows), cfg, END)
    assert [(p.tags["src"], p.fields["bytes"]) for p in points] == [("other", 2000)]
