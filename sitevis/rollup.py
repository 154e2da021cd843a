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
    try:
        shown = db.query(Query('SHOW MEASUREMENTS WITH MEASUREMENT =~ /^flow_[0-9]+[mh]$/'))
    except InfluxError:
        return []
    names = sorted((n for s in shown for [n] in s.values if interval_s(n)), key=interval_s)
    settles = settle_s([interval_s(n) or 0 for n in names])
    out: list[Tier] = []
    for name, settle in zip(names, settles, strict=True):
        # Measurements are per database: the policy holds this rollup only if it has a
        # point of it. Its first bucket may have been summed from part of its data, and
        # a rollup of a rollup is whole only where its source is.
        first = db.query(Query(f"SELECT {identifier('bytes')} FROM "
                               f"{_source(name, rp)} ORDER BY time ASC LIMIT 1"))
        if not first or not first[0].values:
            break
        step = (interval_s(name) or 0) * NS
        since = int(first[0].values[0][0]) * 1_000_000 + step
        if out:
            since = max(since, _ceil(out[-1].since_ns, step))
        out.append(Tier(name, step, settle * NS, since))
    return out[::-1]


def _source(measurement: str, rp: str | None) -> str:
    return f"{identifier(rp)}.{identifier(measurement)}" if rp else identifier(measurement)


Key = tuple[str, ...]


def totals(db: Influx, rp: str | None, where: Where, fields: Sequence[str],
           group_by: Sequence[str], start_ns: int, end_ns: int,
           now_ns: int | None = None, *, through: Sequence[Tier] | None = None
           ) -> dict[Key, dict[str, int]]:
    """SUM of each field over [start, end) per group_by tag values, read through the
    rollups `rp` holds (none in the downsampled policy), or only `through` these (a
    benchmark's [] reads raw alone); `where` holds the other conditions, unchanged."""
    found = tiers(db, rp) if through is None else through
    segments = plan(start_ns, end_ns, now_ns or time.time_ns(), found)
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

