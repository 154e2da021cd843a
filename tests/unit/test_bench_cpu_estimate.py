"""bench.cpu's estimate: phases grouped by round, low quantiles, the ratio interval."""

from __future__ import annotations

import math

from bench.cpu import (
    FLOW5,
    NONE,
    SITEVIS,
    TCPDUMP,
    Phase,
    added,
    quantile,
    ratio_interval,
    rounds_of,
    schedule,
)

RATE = 1000
COST = {NONE: 2000, FLOW5: 2150, SITEVIS: 2200, TCPDUMP: 2600}  # ns per packet


def _phases(rounds: int, slowed=lambda i, name: False) -> list[Phase]:
    """One phase per scheduled burst; the slowed ones take 30 % longer (what
    interference from outside the VM does to a phase)."""
    out = []
    for i, name in enumerate(schedule(rounds)):
        ns = COST[name] * (1.3 if slowed(i, name) else 1.0)
        out.append(Phase(name, int(ns * RATE), RATE, 0))
    return out


def test_quantile_interpolates_and_is_nan_when_empty():
    assert quantile([5, 1, 4, 2, 3], 0.2) == 1.8
    assert quantile([7], 0.2) == 7
    assert math.isnan(quantile([], 0.2))


def test_schedule_puts_every_watcher_between_two_off_phases():
    plan = schedule(2)
    assert plan[::2] == [NONE] * 7
    assert plan[1:6:2] == [FLOW5, SITEVIS, TCPDUMP]
    assert plan[7:12:2] == [SITEVIS, TCPDUMP, FLOW5]  # rotated


def test_rounds_keep_only_whole_bursts_and_the_leading_off_phase_goes_to_the_first():
    phases = _phases(2)
    phases[3] = Phase(SITEVIS, 1, RATE - 1, 0)  # its burst was cut: not used
    rounds = rounds_of(phases, RATE)
    assert len(rounds) == 2
    assert len(rounds[0][NONE]) == 4 and len(rounds[1][NONE]) == 3
    assert rounds[0][SITEVIS] == [] and rounds[1][SITEVIS] == [COST[SITEVIS]]


def test_low_quantile_ignores_slowed_phases_the_median_does_not():
    # A third of the phases slowed, and by bad luck 55 % of sitevis's.
    def slowed(i: int, name: str) -> bool:
        return i < 6 * 22 if name == SITEVIS else i % 3 == 0

    rounds = rounds_of(_phases(40, slowed), RATE)
    low, mid = added(rounds, 0.2), added(rounds, 0.5)
    assert low == {FLOW5: 150, SITEVIS: 200, TCPDUMP: 600}
    assert mid[TCPDUMP] == 600 and mid[SITEVIS] > 600  # the median took the slowdown
    lo, hi = ratio_interval(rounds, 0.2, draws=200)
    assert 0 < lo <= 200 / 600 <= hi < 0.5
