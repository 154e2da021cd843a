"""Top lists over the preset ranges, computed ahead of the request for every site.

A site-wide top list reads every flow series of its range, and InfluxDB 1.x pays for each
series a statement touches (about 40 us; 100 internet-facing boxes' day of talkers takes
about 10 s: bench/sitescale.py). Everyone who opens the overview or asks the API for the
last hour or day asks for the same sums, so the health evaluator's process (`sitevis
portal health`) computes them ahead: for each preset range and grouping, one pass sums
per site and direction into the cache the gunicorn workers share, and a request in that
shape (a preset range, no box or interface filter) is answered from the newest pass: the
user's sites and the direction picked from it, ranked at request time. A preset is
recomputed when its pass is older than 1/288 of its range (a day: every 5 minutes), never
more often than `overview_refresh_seconds` of the config. Absolute ranges, other ranges
and box or interface filters are computed at request time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from sitevis import rollup, toplist
from sitevis.influx import Influx
from sitevis.portal import influxwrite
from sitevis.portal.traffic import top
from sitevis.portal.traffic.timerange import NS, TimeRange, resolve
from sitevis.query import Where, duration

# What the overview shows (ingress only: traffic between two boxes of the site counts
# once) and its length.
TOPS = {"talkers": "Top talkers", "services": "Top services", "protocols": "Protocol mix"}
LIMIT = 10
PRESETS = toplist.RANGES     # written back for the dashboards and `sitevis top`
# A pass may be this share of its range old before the next one is due, and at most
# MAX_PERIOD_S (a 30-day chart should not miss its last hours).
STALE_SHARE = 288
MAX_PERIOD_S = 300
# A pass may take InfluxDB this long (a request gets influxdb.timeout_seconds): a big
# site's day of talkers is tens of seconds of work, which is why it is done ahead.
PASS_TIMEOUT_S = 300.0
KEY = "sitevis:top-ahead:{by}:{since}"
AT = ":at"      # a pass's computed_ns, kept beside it under its key + AT
DIRS = ("ingress", "egress")

Sums = dict[tuple[str, ...], tuple[int, int]]


@dataclass(frozen=True)
class Computed:
    """One pass: per (site, dir), each key's (bytes, packets) over [start, end)."""
    by: str
    since: str
    rp: str | None
    start_ns: int
    end_ns: int
    computed_ns: int
    seconds: float          # what computing it took
    sums: dict[tuple[str, str], Sums]

    @property
    def age_s(self) -> float:
        return (time.time_ns() - self.computed_ns) / NS


def period_s(since: str, every_s: float) -> float:
    """How often the pass of a preset is due: 1/STALE_SHARE of its range, at least
    `every_s`, at most MAX_PERIOD_S."""
    return min(MAX_PERIOD_S, max(every_s, duration(since).ns / NS / STALE_SHARE))


def due(key: str, since: str, every_s: float) -> bool:
    """Whether the pass kept under `key` is missing or older than its period (read from
    its time alone: a big site's pass is megabytes)."""
    computed_ns = cache.get(key + AT)
    return not isinstance(computed_ns, int) or \
        (time.time_ns() - computed_ns) / NS >= period_s(since, every_s)


def keep(key: str, since: str, every_s: float, computed: Any, seconds: float) -> None:
    """Keep a pass, and its time apart, until twice its period has passed (and what
    computing it took)."""
    timeout = 2 * period_s(since, every_s) + seconds + 10
    cache.set(key, computed, timeout=timeout)
    cache.set(key + AT, computed.computed_ns, timeout=timeout)


def fresh(key: str, since: str, every_s: float) -> Any:
    """The pass kept under `key` if it is younger than twice its period, else None."""
    found = cache.get(key)
    computed_ns = getattr(found, "computed_ns", None)
    if every_s <= 0 or computed_ns is None or \
            (time.time_ns() - computed_ns) / NS > 2 * period_s(since, every_s):
        return None
    return found


def preset_of(asked: Mapping[str, Any], presets: tuple[str, ...] = PRESETS) -> str | None:
    """The one of `presets` a request's range and filters ask for, if any (`since` 1d is
    24h; no `since` is the default hour)."""
    if any(asked.get(k) for k in ("start", "end", "box", "interface")):
        return None
    until = asked.get("until")
    if until and duration(until, allow_zero=True).ns != 0:
        return None
    wanted = duration(asked.get("since") or "1h").ns
    return next((p for p in presets if duration(p).ns == wanted), None)


def compute(db: Influx, by: str, since: str) -> Computed:
    """The sums of grouping `by` over the last `since`, per site and direction, now, from
    the policy the dashboards would read (raw for talkers: the only one with addresses)."""
    rng = resolve(since, None, None, None)
    return summed(db, top.policy_for(db, by, rng).name, by, since, rng)


def summed(db: Influx, rp: str | None, by: str, since: str, rng: TimeRange) -> Computed:
    began = time.monotonic()
    found = rollup.totals(db, rp, Where(), ("bytes", "packets"),
                          ("site", "dir", *top.GROUPINGS[by]), rng.start_ns, rng.end_ns)
    sums: dict[tuple[str, str], Sums] = {}
    for (site, way, *key), value in found.items():
        sums.setdefault((site, way), {})[tuple(key)] = (value["bytes"], value["packets"])
    return Computed(by, since, rp, rng.start_ns, rng.end_ns, time.time_ns(),
                    time.monotonic() - began, sums)


def refresh(db: Influx, every_s: float, *, force: bool = False) -> list[Computed]:
    """Compute every pass that is due (all of them with `force`) and keep it; return
    what was computed."""
    done = []
    for since in PRESETS:
        for by in top.GROUPINGS:
            key = KEY.format(by=by, since=since)
            if force or due(key, since, every_s):
                computed = compute(db, by, since)
                keep(key, since, every_s, computed, computed.seconds)
                publish(computed)
                done.append(computed)
    return done


def publish(computed: Computed) -> bool:
    """Write the pass's lists to InfluxDB for the dashboards; best effort, as the
    annotations."""
    found = points(computed)
    return not found or influxwrite.write("\n".join(found),
                                          f"top lists of {computed.since} by {computed.by}")


def points(computed: Computed) -> list[str]:
    """The pass's lists, per site and direction, as `toplist` points (sitevis/toplist.py)."""
    out = []
    for site, way in sorted(computed.sums):
        result = ranked(computed, way, [site], toplist.ROWS)
        out += toplist.lines(site, computed.since, computed.by, way,
                             [(r.key, r.bytes, r.packets) for r in result.rows],
                             (result.other.bytes, result.other.packets),
                             computed.start_ns, computed.end_ns, computed.computed_ns)
    return out


def newest(by: str, since: str, every_s: float) -> Computed | None:
    """The pass of `by` over `since`, if one is younger than twice its period."""
    if since not in PRESETS or by not in top.GROUPINGS:
        return None
    found = fresh(KEY.format(by=by, since=since), since, every_s)
    return found if isinstance(found, Computed) else None


def ranked(computed: Computed, way: str, sites: Iterable[str] | None, limit: int
           ) -> top.TopResult:
    """The top list of one pass for direction `way` (or "any") over `sites` (None:
    every site), as top.top ranks it."""
    ways = DIRS if way == "any" else (way,)
    wanted = None if sites is None else set(sites)
    merged: dict[tuple[str, ...], list[int]] = {}
    for (site, d), sums in computed.sums.items():
        if d not in ways or (wanted is not None and site not in wanted):
            continue
        for key, (nbytes, packets) in sums.items():
            total = merged.setdefault(key, [0, 0])
            total[0] += nbytes
            total[1] += packets
    return top.rank(computed.by, computed.rp,
                    {key: (v[0], v[1]) for key, v in merged.items()}, limit)


def overview_top(db: Influx, by: str, rng: TimeRange, where: Where) -> top.TopResult:
    """The overview's top list `by` over `rng` within the user's scope `where`, now."""
    return top.top(db, by, rng, where.copy().tag("dir", "ingress"), LIMIT)
