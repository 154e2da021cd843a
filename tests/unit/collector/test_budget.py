"""The series budget: talkers admitted by weight at a bounded rate, the rest folded exactly."""

from __future__ import annotations

import json
import random

from sitevis_collector.config import parse_config
from sitevis_collector.export.admission import Admission
from sitevis_collector.export.aggregate import flow_points, new_budget
from sitevis_collector.export.budget_state import NAME, BudgetKeeper
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


def scanned(min_share: float) -> Admission[str]:
    """20 steady peers under an hour of a scan: 2000 new one-packet (60-byte) peers every
    interval. The first interval fills the set of 50 with the peers and 30 probes, which
    then decay to nothing; tokens for 600 admissions an hour."""
    adm: Admission[str] = Admission(50, 36000, min_share=min_share)
    steady = [(f"peer{i}", 50_000) for i in range(20)]
    for t in range(360):
        adm.update(steady + [(f"probe{t}-{i}", 60) for i in range(2000)])
    return adm


def test_a_scan_s_one_packet_peers_replace_no_talker_when_heavy_hitters_are_required():
    guarded = scanned(min_share=0.001)
    assert guarded.admissions == 50 and guarded.evictions == 0
    assert {f"peer{i}" for i in range(20)} <= set(guarded.admitted)
    # Without the rule the same hour turns the set over: a series per probe admitted.
    unguarded = scanned(min_share=0.0)
    assert unguarded.evictions > 100


def test_a_newcomer_that_is_a_heavy_hitter_still_replaces_the_weakest():
    adm: Admission[str] = Admission(2, 3600, min_share=0.01)
    adm.update([("a", 1000), ("b", 10)])
    for _ in range(30):
        adm.update([("a", 1000), ("c", 500)] + [(f"probe{i}", 1) for i in range(100)])
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


def result(bytes_by_flow: dict) -> DrainResult:
    return DrainResult(flows={k: FlowCounters(packets=1, bytes=b)
                              for k, b in bytes_by_flow.items()})


def test_a_restart_keeps_the_admitted_set_and_spends_no_new_initial_fill(tmp_path):
    """A collector restarted after admitting its talkers (export/budget_state.py): the
    same set is admitted, decayed for the time it was away, and new peers get only what
    the bucket refilled meanwhile, not a second initial fill."""
    cfg = config({"talkers": 10, "admissions_per_hour": 36})     # 0.1 token per interval
    first = new_budget(cfg)
    keeper = BudgetKeeper(first, str(tmp_path))
    flow_points(result({flow(f"198.19.0.{i}"): 1000 for i in range(10)}), cfg, END,
                first)
    assert len(first.talkers) == 10 and keeper.save()
    state = json.loads((tmp_path / NAME).read_text())
    state["saved_at"] -= 100                      # 10 intervals ago: one token refilled
    (tmp_path / NAME).write_text(json.dumps(state))

    again = new_budget(cfg)
    assert BudgetKeeper(again, str(tmp_path)).load()
    assert set(again.talkers.admitted) == set(first.talkers.admitted)
    decayed = first.talkers.decay ** 10
    for key, score in again.talkers.admitted.items():
        assert abs(score / (first.talkers.admitted[key] * decayed) - 1) < 1e-3  # + ms
    # The weight of everything seen (the heavy-hitter floor) decays with them.
    assert first.talkers.total == 10 * 1000
    assert abs(again.talkers.total / (first.talkers.total * decayed) - 1) < 1e-3
    # Twenty new, much heavier peers: one token, so one of them gets in.
    flow_points(result({flow(f"198.19.1.{i}"): 10**6 for i in range(20)}), cfg, END,
                again)
    newcomers = [k for k in again.talkers.admitted if k[3].startswith("198.19.1.")]
    assert len(newcomers) == 1 and len(again.talkers) == 10
    # Without the state, a fresh budget admits ten of them at once.
    fresh = new_budget(cfg)
    flow_points(result({flow(f"198.19.1.{i}"): 10**6 for i in range(20)}), cfg, END,
                fresh)
    assert len(fresh.talkers) == 10


def test_an_unreadable_budget_state_is_one_warning_and_a_fresh_budget(tmp_path, caplog):
    (tmp_path / NAME).write_text("{not json")
    budget = new_budget(config({"talkers": 10}))
    assert not BudgetKeeper(budget, str(tmp_path)).load()
    assert "not used" in caplog.text and budget.talkers.tokens == 10
    assert not BudgetKeeper(budget, str(tmp_path / "missing")).load()
