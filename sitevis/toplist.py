"""The `toplist` measurement (docs/schema.md): the site's top lists over the last 1 h, 6 h
and 24 h as the portal computes them ahead (sitevis/portal/traffic/ahead.py), written
back to InfluxDB so that a dashboard panel reads a day's top talkers from a few dozen
series instead of summing every flow series of the day.

One pass writes, per site and direction, ROWS ranks (`01` …) and `other` (the rest and
the folded rows), all with the pass's time; a rank the list does not fill is written
empty (bytes 0) so that the newest pass replaces an older, longer one whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sitevis.influx import Influx
from sitevis.lineproto import string, tag
from sitevis.query import Duration, Where, aggregate, duration, select

MEASUREMENT = "toplist"
ROWS = 20
OTHER = "other"
# The panels read passes this recent; the portal writes a day's every 5 minutes.
FRESH = "15m"
# The ranges the portal computes ahead (sitevis/portal/traffic/ahead.py) and lists here.
RANGES = ("1h", "6h", "24h")
# The key fields of each grouping (the tags of `flow` the list is summed by).
KEYS = {"talkers": ("src", "dst"), "services": ("service",), "protocols": ("proto",),
        "boxes": ("box",)}


def lines(site: str, since: str, by: str, way: str,
          rows: Iterable[tuple[dict[str, str], int, int]], other: tuple[int, int],
          start_ns: int, end_ns: int, at_ns: int) -> list[str]:
    """The points of one list: `rows` (key, bytes, packets), at most ROWS of them, in
    rank order, and the `other` sums; start/end: the range the pass summed."""
    listed = list(rows)[:ROWS]
    head = (f"{MEASUREMENT},site={tag(site)},range={tag(since)},list={tag(by)},"
            f"dir={tag(way)}")
    span = f"start_ms={start_ns // 1_000_000}i,end_ms={end_ns // 1_000_000}i"
    out = []
    for rank in range(ROWS):
        key, nbytes, packets = listed[rank] if rank < len(listed) else ({}, 0, 0)
        names = ",".join(f"{name}={string(key.get(name, ''))}" for name in KEYS[by])
        out.append(f"{head},rank={rank + 1:02d} {names},bytes={nbytes}i,packets={packets}i,"
                   f"{span} {at_ns}")
    out.append(f"{head},rank={OTHER} bytes={other[0]}i,packets={other[1]}i,{span} {at_ns}")
    return out


def panel_query(by: str, since: str, way: str = "ingress") -> str:
    """A dashboard table's InfluxQL (Grafana's $site): the newest pass's ranks per site,
    without the empty ones."""
    names = [*KEYS[by], "bytes", "packets"]
    newest = ", ".join(f'LAST("{name}") AS "{name}"' for name in names)
    columns = ", ".join(f'"{name}"' for name in names)
    return (f'SELECT {columns} FROM '
            f'(SELECT {newest} FROM "{MEASUREMENT}" WHERE "site" =~ /^$site$/ AND '
            f'"list" = \'{by}\' AND "range" = \'{since}\' AND "dir" = \'{way}\' AND '
            f'time > now() - {FRESH} GROUP BY "site", "rank") WHERE "bytes" > 0 '
            'GROUP BY "site", "rank"')


@dataclass(frozen=True)
class Pass:
    """The newest list of one site, range, grouping and direction: rows (key, bytes,
    packets) in rank order, and the range it summed and when (epoch ms)."""
    site: str
    rows: list[tuple[tuple[str, ...], int, int]]
    start_ms: int
    end_ms: int


def range_of(since: Duration) -> str | None:
    """The computed-ahead range `since` is as long as (24h, 1d and 1440m alike), or None."""
    return next((r for r in RANGES if duration(r).ns == since.ns), None)


def newest(influx: Influx, by: str, since: str, way: str, site: str | None) -> list[Pass]:
    """Each site's newest pass no older than FRESH (one per site; [] for none): what a
    reader that cannot wait for the sum of every flow series of the range reads instead."""
    names = [*KEYS[by], "bytes", "packets", "start_ms", "end_ms"]
    where = (Where().tag("list", by).tag("range", since).tag("dir", way)
             .since(duration(FRESH)))
    if site:
        where.tag("site", site)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for series in influx.query(select([aggregate("LAST", n, n) for n in names], MEASUREMENT,
                                      where, group_by=("site", "rank"))):
        row = dict(zip(series.columns, series.values[0], strict=True))
        found.setdefault(series.tags["site"], {})[series.tags["rank"]] = row
    out = []
    for name, ranks in sorted(found.items()):
        listed = [ranks[r] for r in sorted(ranks) if r != OTHER and ranks[r]["bytes"]]
        span = ranks.get(OTHER) or next(iter(ranks.values()))
        out.append(Pass(name, [(tuple(r[k] for k in KEYS[by]), r["bytes"], r["packets"])
                               for r in listed], span["start_ms"], span["end_ms"]))
    return out
