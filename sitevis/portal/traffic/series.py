"""series/traffic: bits/s and packets/s per box, interface and direction over a range,
as the site overview's traffic panels draw them (a bucket's sum over its length)."""

from __future__ import annotations

from dataclasses import dataclass

from sitevis.influx import Influx
from sitevis.portal.traffic import source
from sitevis.portal.traffic.timerange import NS, TimeRange
from sitevis.query import Duration, Where, aggregate, duration, select, select_series

# Steps a range is cut into (Grafana's $__interval picks from a similar ladder), at
# least the policy's resolution, at most MAX_POINTS buckets.
STEPS = tuple(duration(s) for s in ("10s", "30s", "1m", "5m", "10m", "15m", "30m", "1h",
                                    "3h", "6h", "12h", "1d"))
MAX_POINTS = 400
GROUPINGS = {"box": ("box", "dir"), "interface": ("box", "iface", "dir"), "site": ("dir",),
             "site_box": ("site", "box", "dir")}   # the last: for ahead_series.py


@dataclass
class Series:
    key: dict[str, str]
    times_ms: list[int]
    bits_per_s: list[float]
    packets_per_s: list[float]


def step_for(rng: TimeRange, resolution: Duration) -> Duration:
    wanted = max(resolution.ns, rng.seconds * NS / MAX_POINTS)
    for step in STEPS:
        if step.ns >= wanted and step.ns % resolution.ns == 0:
            return step
    return STEPS[-1]


def traffic(db: Influx, rng: TimeRange, where: Where, per: str) -> tuple[str | None,
                                                                          Duration, list[Series]]:
    policy = source.policy(db, rng)
    step = step_for(rng, policy.interval)
    where.between(rng.start_ns, rng.end_ns)
    query = select_series([aggregate("SUM", "bytes", "bytes"),
                           aggregate("SUM", "packets", "packets")], "iface", where,
                          step=step, rp=policy.name, group_by=GROUPINGS[per])
    seconds = step.ns / NS
    out = []
    for s in db.query(query):
        cols = {c: i for i, c in enumerate(s.columns)}
        out.append(Series(
            dict(s.tags), [int(v[cols["time"]]) for v in s.values],
            [float(v[cols["bytes"]] or 0) * 8 / seconds for v in s.values],
            [float(v[cols["packets"]] or 0) / seconds for v in s.values]))
    out.sort(key=lambda s: tuple(s.key.values()))
    return policy.name, step, out


def totals(db: Influx, rng: TimeRange, where: Where, per: str) -> dict[tuple[str, ...],
                                                                     tuple[int, int]]:
    """Bytes and packets over the whole range per `per` grouping's tag values: one sum
    per series, no time buckets (InfluxDB's cost is in the buckets it makes: 100 boxes'
    hour in 10-s buckets takes over a second, their totals a twentieth of that)."""
    policy = source.policy(db, rng)
    tags = GROUPINGS[per]
    query = select([aggregate("SUM", "bytes", "bytes"), aggregate("SUM", "packets", "packets")],
                   "iface", where.copy().between(rng.start_ns, rng.end_ns), rp=policy.name,
                   group_by=tags)
    out = {}
    for s in db.query(query):
        row = dict(zip(s.columns, s.values[0], strict=True))
        out[tuple(s.tags.get(t, "") for t in tags)] = (int(row.get("bytes") or 0),
                                                       int(row.get("packets") or 0))
    return out
