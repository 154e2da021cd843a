"""The site overview's top lists over its preset ranges, computed ahead of the request.

A top list over the last hour of a big site reads every talker series of that hour, and
InfluxDB 1.x pays for each series a statement touches (about 40 us; 100 boxes' talkers
take seconds: bench/portal_pages.py). Everyone who opens the overview asks for the same
lists, so the health evaluator's loop (`sitevis portal health`) computes them for the
whole site every `overview_refresh_seconds` of the config, into the cache the gunicorn
workers share, and the overview shows the newest one not older than twice that, with the
time it was computed. Absolute ranges, other presets and users limited to some sites are
computed at request time, as every other query is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache

from sitevis.influx import Influx
from sitevis.portal.traffic import top
from sitevis.portal.traffic.timerange import NS, TimeRange, resolve
from sitevis.query import Where

# What the overview shows: its top lists (ingress only: traffic between two boxes of the
# site counts once), their length, and the presets computed ahead (its default range).
TOPS = {"talkers": "Top talkers", "services": "Top services", "protocols": "Protocol mix"}
LIMIT = 10
PRESETS = ("1h",)
KEY = "sitevis:overview-top:{by}:{since}"


@dataclass(frozen=True)
class Computed:
    result: top.TopResult
    start_ns: int
    end_ns: int
    computed_ns: int
    seconds: float          # what computing it took

    @property
    def age_s(self) -> float:
        return (time.time_ns() - self.computed_ns) / NS


def overview_top(db: Influx, by: str, rng: TimeRange, where: Where) -> top.TopResult:
    """The overview's top list `by` over `rng` within the user's scope `where`."""
    return top.top(db, by, rng, where.copy().tag("dir", "ingress"), LIMIT)


def compute(db: Influx, by: str, since: str) -> Computed:
    """The whole site's top list `by` over the last `since`, computed now."""
    rng = resolve(since, None, None, None)
    began = time.monotonic()
    result = overview_top(db, by, rng, Where())
    return Computed(result, rng.start_ns, rng.end_ns, time.time_ns(),
                    time.monotonic() - began)


def refresh(db: Influx, every_s: float) -> list[Computed]:
    """Compute every top list of every preset and keep each for twice `every_s`."""
    done = []
    for since in PRESETS:
        for by in TOPS:
            computed = compute(db, by, since)
            cache.set(KEY.format(by=by, since=since), computed, timeout=2 * every_s + 10)
            done.append(computed)
    return done


def newest(by: str, since: str, every_s: float) -> Computed | None:
    """The list computed ahead, if there is one younger than twice `every_s`."""
    if every_s <= 0 or since not in PRESETS or by not in TOPS:
        return None
    found = cache.get(KEY.format(by=by, since=since))
    if not isinstance(found, Computed) or found.age_s > 2 * every_s:
        return None
    return found

