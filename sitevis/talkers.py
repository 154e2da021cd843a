"""`sitevis top`: the site's top talkers (or services, boxes) over a time range."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from sitevis.influx import Influx

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


def top(influx: Influx, by: str, since: str, direction: str, site: str | None,
        limit: int) -> list[Row]:
    """Largest rows by bytes. A flow crosses two boxes' interfaces (egress of one,
    ingress of the other): one direction counts it once."""
    tags = GROUPINGS[by]
    conditions = [f"time > now() - {since}", f"dir = '{direction}'",
                  "src != 'other'", "src != 'overflow'"]
    if site:
        conditions.append("site = '" + site.replace("'", "\\'") + "'")
    group = ", ".join(f'"{t}"' for t in tags)
    rows = [
        Row(tuple(s.tags.get(t, "") for t in tags), int(s.values[0][1] or 0),
            int(s.values[0][2] or 0))
        for s in influx.query(f"SELECT SUM(bytes), SUM(packets) FROM flow WHERE "
                              f"{' AND '.join(conditions)} GROUP BY {group}")
    ]
    rows.sort(key=lambda r: (-r.bytes, r.key))
    return rows[:limit]


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
