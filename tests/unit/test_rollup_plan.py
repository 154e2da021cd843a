"""sitevis.rollup.plan: which measurement serves which part of a range."""

from __future__ import annotations

import itertools

from sitevis.rollup import NS, Segment, Tier, cheapest, plan, settle_s

M, H = 60 * NS, 3600 * NS
T0 = 1_700_000_000 * NS - (1_700_000_000 * NS) % H   # an hour boundary
HOURLY = Tier("flow_1h", H, 750 * NS, T0 - 48 * H)
FIVE = Tier("flow_5m", 5 * M, 150 * NS, T0 - 48 * H)


def covered(segments: list[Segment]) -> list[tuple[int, int]]:
    return [(s.start_ns, s.end_ns) for s in segments]


def test_segments_cover_the_range_once_in_order_coarsest_in_the_middle():
    start, end, now = T0 - 24 * H - 7 * M - 3 * NS, T0 + 17 * M + 9 * NS, T0 + 17 * M + 9 * NS
    segments = plan(start, end, now, [HOURLY, FIVE])
    spans = covered(segments)
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert [s.measurement for s in segments] == ["flow", "flow_5m", "flow_1h", "flow_5m",
                                                 "flow"]
    assert segments[2] == Segment("flow_1h", T0 - 24 * H, T0)
    # The 5-minute bucket that ended 2 min ago is not final yet (settles after 150 s).
    assert segments[3] == Segment("flow_5m", T0, T0 + 10 * M)


def test_a_short_range_reads_raw_only():
    now = T0 + 3 * M
    assert plan(now - 4 * M, now, now, [HOURLY, FIVE]) == [Segment("flow", now - 4 * M, now)]


def test_nothing_from_a_rollup_before_its_first_whole_bucket():
    young = Tier("flow_5m", 5 * M, 150 * NS, T0 + 30 * M)
    now = T0 + 2 * H
    segments = plan(T0, now, now, [young])
    assert segments[0] == Segment("flow", T0, T0 + 30 * M)
    assert segments[1].measurement == "flow_5m" and segments[1].start_ns == T0 + 30 * M


def test_an_empty_range_plans_nothing():
    assert plan(T0, T0, T0, [HOURLY]) == []


def test_settle_times_follow_the_role_s_cq_schedule():
    # flow_5m runs every minute, flow_1h every 5 minutes (roles/influxdb/vars/main.yml).
    assert settle_s([300, 3600]) == [30 + 2 * 60, 30 + 2 * 60 + 2 * 300]


def test_combined_statements_keep_their_own_parameters():
    from sitevis.query import Where, combine, select

    first = select(["SUM(\"bytes\")"], "flow", Where().tag("box", "a").between(1, 2))
    second = select(["SUM(\"bytes\")"], "flow_5m", Where().tag("box", "a").between(3, 4))
    joined = combine([first, second])
    assert joined.text.count(";") == 1
    assert joined.text.split("; ")[1].endswith("WHERE \"box\" = $s1p0 AND time >= $s1p1 "
                                               "AND time < $s1p2")
    assert joined.params == {"s0p0": "a", "s0p1": 1, "s0p2": 2,
                             "s1p0": "a", "s1p1": 3, "s1p2": 4}


def test_an_hour_is_read_in_one_statement_a_day_through_the_rollups():
    now = T0 + 17 * M + 9 * NS
    assert cheapest(now - H, now, now, [HOURLY, FIVE]) == [Segment("flow", now - H, now)]
    day = cheapest(now - 24 * H, now, now, [HOURLY, FIVE])
    assert "flow_1h" in {s.measurement for s in day} and len(day) == 5
