"""Flow totals over a time range from the flow rollups (docs/schema.md, "Rollups").

The influxdb role sums `flow` into flow_5m and flow_5m into flow_1h (continuous queries,
every tag kept, in the raw policy). A total over a range reads whole rollup buckets where
they are final and finer data only for the edges: a day's top list reads 24 hourly sums
per series and a few minutes of raw points, not 8640 raw points per series. The sums are
the same: a rollup bucket is the exact sum of the raw points in it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sitevis.influx import Influx, InfluxError
from sitevis.query import Query, Where, aggregate, combine, identifier, select

NS = 1_000_000_000
BASE = "flow"
# A rollup measurement's name says its interval (roles/influxdb: flow_<interval>).
NAME = re.compile(r"flow_([1-9][0-9]*)([mh])")
UNIT_S = {"m": 60, "h": 3600}
# When a bucket is final (roles/influxdb/vars/main.yml, _influxdb_continuous_queries): the
# first rollup runs every minute, each later one as often as its source's buckets end;
# a run after the source's bucket is final, plus one run of margin, has summed it.
RAW_SETTLE_S = 30          # a raw interval's points reach InfluxDB within this
FIRST_EVERY_S = 60
CACHE_S = 300              # tiers change only when the role adds one
META_RP, META = "sitevis_meta", "sitevis_rollup"   # the role's record of its rollups


@dataclass(frozen=True)
class Tier:
    measurement: str
    interval_ns: int
    settle_ns: int          # a bucket is final this long after its end
    since_ns: int           # the first bucket known whole (rollups start at creation)


@dataclass(frozen=True)
class Segment:
    measurement: str
    start_ns: int
    end_ns: int


def interval_s(measurement: str) -> int | None:
    found = NAME.fullmatch(measurement)
    return int(found[1]) * UNIT_S[found[2]] if found else None


def settle_s(intervals: Sequence[int]) -> list[int]:
    """Seconds after its end at which a bucket of each rollup (finest first) is final."""
    out, settled, every = [], RAW_SETTLE_S, FIRST_EVERY_S
    for seconds in intervals:
        settled += 2 * every
        out.append(settled)
        every = seconds
    return out


def _floor(value: int, step: int) -> int:
    return value - value % step


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


# What a statement costs InfluxDB 1.x, per series it touches, measured on these machines
# (100 boxes' flow series, 1 h; see bench/portal_pages.py): ~40 us to set up, whatever
# its time range, plus ~0.16 us per point. So a plan of several statements pays off only
# where the rollups spare many raw points (long ranges), never for an hour.
STATEMENT_COST, POINT_COST = 40.0, 0.16
RAW_INTERVAL_NS = 10 * NS   # the collectors' default interval


def cost(segments: Sequence[Segment], intervals: dict[str, int]) -> float:
    """Estimated microseconds per series to read the segments."""
    return sum(STATEMENT_COST + POINT_COST * (s.end_ns - s.start_ns)
               / intervals.get(s.measurement, RAW_INTERVAL_NS) for s in segments)


def cheapest(start_ns: int, end_ns: int, now_ns: int, tiers: Sequence[Tier],
             base: str = BASE) -> list[Segment]:
    """plan() through the rollups, or raw alone when that costs less."""
    through = plan(start_ns, end_ns, now_ns, tiers, base)
    alone = plan(start_ns, end_ns, now_ns, [], base)
    intervals = {t.measurement: t.interval_ns for t in tiers}
    return through if cost(through, intervals) < cost(alone, intervals) else alone


def plan(start_ns: int, end_ns: int, now_ns: int, tiers: Sequence[Tier],
         base: str = BASE) -> list[Segment]:
    """Segments covering [start, end) exactly once: the coarsest tier's final buckets in
    the middle, the edges from finer tiers, raw (`base`) for what none holds."""
    if start_ns >= end_ns:
        return []
    if not tiers:
        return [Segment(base, start_ns, end_ns)]
    tier, finer = tiers[0], tiers[1:]
    step = tier.interval_ns
    low = _ceil(max(start_ns, tier.since_ns), step)
    high = min(_floor(end_ns, step), _floor(now_ns - tier.settle_ns, step))
    if low >= high:
        return plan(start_ns, end_ns, now_ns, finer, base)
    return [*plan(start_ns, low, now_ns, finer, base), Segment(tier.measurement, low, high),
            *plan(high, end_ns, now_ns, finer, base)]


_cache: dict[tuple[str, str, str], tuple[float, list[Tier]]] = {}
_cache_lock = threading.Lock()


def tiers(db: Influx, rp: str | None) -> list[Tier]:
    """The rollups `rp` holds, coarsest first ([] for none, or for a policy without)."""
    key = (db.url, db.database, rp or "")
    with _cache_lock:
        cached = _cache.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    found = _discover(db, rp)
    with _cache_lock:
        _cache[key] = (time.monotonic() + CACHE_S, found)
    return found


def _discover(db: Influx, rp: str | None) -> list[Tier]:
    """From the influxdb role's record (sitevis_meta.sitevis_rollup: which rollups it
    created, in which policy, since when), not from the data: a rollup is whole only
    from its creation on, and finding its first point would scan every series."""
    if rp is None:
        return []
    try:
        found = db.query(Query(f"SELECT {identifier('rp')}, {identifier('since_ms')} FROM "
                               f"{identifier(META_RP)}.{identifier(META)} "
                               f"GROUP BY {identifier('measurement')}"))
    except InfluxError:
        return []   # no record (a database the role did not set up): raw only
    since = {}
    for s in found:
        name = s.tags.get("measurement", "")
        row = dict(zip(s.columns, s.values[-1], strict=True))
        if interval_s(name) and row.get("rp") == rp and isinstance(row.get("since_ms"), int):
            since[name] = row["since_ms"] * 1_000_000
    names = sorted(since, key=lambda n: interval_s(n) or 0)
    out: list[Tier] = []
    for name, settle in zip(names, settle_s([interval_s(n) or 0 for n in names]), strict=True):
        step = (interval_s(name) or 0) * NS
        # A bucket is whole if it started after the rollup began; a rollup of a rollup
        # only where its source is whole.
        first = _ceil(since[name], step)
        if out:
            first = max(first, _ceil(out[-1].since_ns, step))
        out.append(Tier(name, step, settle * NS, first))
    return out[::-1]


Key = tuple[str, ...]


def totals(db: Influx, rp: str | None, where: Where, fields: Sequence[str],
           group_by: Sequence[str], start_ns: int, end_ns: int,
           now_ns: int | None = None, *, through: Sequence[Tier] | None = None
           ) -> dict[Key, dict[str, int]]:
    """SUM of each field over [start, end) per group_by tag values, read through the
    rollups `rp` holds (none in the downsampled policy), or only `through` these (a
    benchmark's [] reads raw alone); `where` holds the other conditions, unchanged."""
    found = tiers(db, rp) if through is None else through
    segments = cheapest(start_ns, end_ns, now_ns or time.time_ns(), found)
    out: dict[Key, dict[str, int]] = {}
    columns = [aggregate("SUM", f, f) for f in fields]
    if not segments:
        return out
    # One request: the segments' statements are answered one after the other.
    query = combine([select(columns, segment.measurement,
                            where.copy().between(segment.start_ns, segment.end_ns),
                            rp=rp, group_by=group_by) for segment in segments])
    for s in db.query(query):
        key = tuple(s.tags.get(t, "") for t in group_by)
        row = dict(zip(s.columns, s.values[0], strict=True))
        sums = out.setdefault(key, dict.fromkeys(fields, 0))
        for f in fields:
            sums[f] += int(row.get(f) or 0)
    return out


def clear_cache() -> None:
    """Forget the tiers found (tests that add a rollup while a process runs)."""
    with _cache_lock:
        _cache.clear()

