"""Traffic per box over the preset ranges, computed ahead of the request for every site.

InfluxDB 1.x pays for every time bucket a statement makes: 100 boxes' week in 30-minute
buckets takes it about 2 s (bench/sitescale.py), whatever the portal does with them. So
the same loop as ahead.py's top lists computes series/traffic per box over the last day,
week and month for every site and direction, and a request in that shape (a preset range,
per box, no box or interface filter) is answered from the newest pass: the user's sites
and the direction picked from it. When a pass is due: ahead.period_s.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sitevis.influx import Influx
from sitevis.portal.traffic import ahead, series
from sitevis.portal.traffic.timerange import resolve
from sitevis.query import Duration, Where

PRESETS = ("24h", "7d", "30d")
KEY = "sitevis:series-ahead:{since}"


@dataclass(frozen=True)
class SeriesPass:
    since: str
    rp: str | None
    step: Duration
    start_ns: int
    end_ns: int
    computed_ns: int
    seconds: float
    series: list[series.Series]     # keyed by site, box and dir


def compute(db: Influx, since: str) -> SeriesPass:
    rng = resolve(since, None, None, None)
    began = time.monotonic()
    rp, step, found = series.traffic(db, rng, Where(), "site_box")
    return SeriesPass(since, rp, step, rng.start_ns, rng.end_ns, time.time_ns(),
                      time.monotonic() - began, found)


def refresh(db: Influx, every_s: float, *, force: bool = False) -> list[SeriesPass]:
    """Compute every pass that is due (all with `force`) and keep it."""
    done = []
    for since in PRESETS:
        key = KEY.format(since=since)
        if force or ahead.due(key, since, every_s):
            computed = compute(db, since)
            ahead.keep(key, since, every_s, computed, computed.seconds)
            done.append(computed)
    return done


def newest(since: str, every_s: float) -> SeriesPass | None:
    if since not in PRESETS:
        return None
    found = ahead.fresh(KEY.format(since=since), since, every_s)
    return found if isinstance(found, SeriesPass) else None


def picked(computed: SeriesPass, way: str, sites: Iterable[str] | None
           ) -> list[series.Series]:
    """The per-box series of `sites` (None: all) in direction `way` (or "any"), keyed
    by box and dir as series.traffic keys them."""
    wanted = None if sites is None else set(sites)
    out = []
    for s in computed.series:
        if (wanted is None or s.key.get("site") in wanted) and \
                way in ("any", s.key.get("dir")):
            key = {k: v for k, v in s.key.items() if k != "site"}
            out.append(series.Series(key, s.times_ms, s.bits_per_s, s.packets_per_s))
    out.sort(key=lambda s: tuple(s.key.values()))
    return out
