"""`sitevis top`: the site's top talkers (or services, boxes) over a time range."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from sitevis.influx import Influx
from sitevis.query import Duration, QueryError, Where, aggregate, count, select

DIRECTIONS = ("ingress", "egress")
GROUPINGS = {
    "talkers": ("src", "dst", "service"),
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
    """Largest rows by bytes from retention policy `rp` (default: the database's). A flow
    crosses two boxes' interfaces (egress of one, ingress of the other): one direction
    counts it once."""
    tags = GROUPINGS[by]
    if direction not in DIRECTIONS:
        raise QueryError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    where = (Where().since(since).tag("dir", direction)
             .tag("src", "other", equal=False).tag("src", "overflow", equal=False))
    if site:
        where.tag("site", site)
    query = select([aggregate("SUM", "bytes", "bytes"), aggregate("SUM", "packets", "packets")],
                   "flow", where, rp=rp, group_by=tags)
    rows = []
    for s in influx.query(query):
        value = dict(zip(s.columns, s.values[0], strict=True))
        rows.append(Row(tuple(s.tags.get(t, "") for t in tags), int(value["bytes"] or 0),
                        int(value["packets"] or 0)))
    rows.sort(key=lambda r: (-r.bytes, r.key))
    return rows[:count(limit)]


def human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} TB"


def table(rows: list[Row], by: str, title: str) -> Table:
    out = Table(title=title, title_justify="left")
    for name in GROUPINGS[by]:
        out.add_column(name)
    out.add_column("bytes", justify="right")
    out.add_column("packets", justify="right")
    for row in rows:
        out.add_row(*row.key, human_bytes(row.bytes), str(row.packets))
    return out
