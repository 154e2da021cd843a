"""`sitevis top`: the site's top talkers (or services, boxes) over a time range."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table

from sitevis import rollup, toplist
from sitevis.influx import Influx
from sitevis.query import Duration, QueryError, Where, count

DIRECTIONS = ("ingress", "egress")
GROUPINGS = {
    "talkers": ("src", "dst"),        # as the portal and the dashboards list them
    "services": ("service",),
    "boxes": ("box",),
}


@dataclass(frozen=True)
class Row:
    key: tuple[str, ...]
    bytes: int
    packets: int


def top(influx: Influx, by: str, since: Duration, direction: str, site: str | None,
        limit: int, rp: str | None = None) -> list[Row]:
    """Largest rows by bytes from retention policy `rp` (default: the database's), through
    its rollups when it is the raw policy (sitevis.rollup). A flow crosses two boxes'
    interfaces (egress of one, ingress of the other): one direction counts it once."""
    tags = GROUPINGS[by]
    if direction not in DIRECTIONS:
        raise QueryError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    where = (Where().tag("dir", direction)
             .tag("src", "other", equal=False).tag("src", "overflow", equal=False))
    if site:
        where.tag("site", site)
    end = time.time_ns()
    sums = rollup.totals(influx, rp, where, ("bytes", "packets"), tags,
                         end - since.seconds * rollup.NS, end, end)
    rows = [Row(key, value["bytes"], value["packets"]) for key, value in sums.items()]
    rows.sort(key=lambda r: (-r.bytes, r.key))
    return rows[:count(limit)]


def ahead(influx: Influx, by: str, since: Duration, direction: str, site: str | None,
          limit: int) -> tuple[list[Row], toplist.Pass] | None:
    """top() as the portal computed it ahead (the `toplist` measurement): for a range it
    computes (1 h, 6 h, 24 h), at most its ROWS, and one site (the one asked, or the only
    one listed). None when there is no such pass no older than toplist.FRESH: the caller
    sums the flow series then."""
    preset = toplist.range_of(since)
    if preset is None or count(limit) > toplist.ROWS or by not in toplist.KEYS:
        return None
    passes = toplist.newest(influx, by, preset, direction, site)
    if len(passes) != 1:
        return None
    listed = passes[0]
    return [Row(key, nbytes, packets) for key, nbytes, packets in listed.rows][:limit], listed


def human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} TB"


def table(rows: list[Row], by: str) -> Table:
    out = Table()
    for name in GROUPINGS[by]:
        out.add_column(name)
    out.add_column("bytes", justify="right")
    out.add_column("packets", justify="right")
    for row in rows:
        out.add_row(*row.key, human_bytes(row.bytes), str(row.packets))
    return out
