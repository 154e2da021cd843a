"""`sitevis status`: per box, is the collector alive and is what it sees complete?"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.table import Table

from sitevis.influx import Influx
from sitevis.query import Duration, Where, aggregate, duration, select

# A box is stale when its last self-metric is older than this (a few intervals).
STALE_AFTER_S = 60


@dataclass
class BoxStatus:
    box: str
    last_seen_ms: int | None = None
    interfaces: int | None = None
    packets: int = 0
    kernel_packets: int = 0
    overflow_events: int = 0
    ringbuf_lost: int = 0
    write_errors: int = 0
    refused: int = 0            # points InfluxDB refused (a limit, a type conflict)
    refused_lost: int = 0       # of those, the ones whose counts could not be folded
    talkers: int | None = None  # talkers the box's series budget keeps with addresses
    spool_bytes: int | None = None

    def age(self, now_ms: int) -> float | None:
        return None if self.last_seen_ms is None else (now_ms - self.last_seen_ms) / 1000

    @property
    def coverage(self) -> float | None:
        return self.packets / self.kernel_packets if self.kernel_packets else None


# How far back "last seen" looks: beyond any retention the raw policy keeps.
LAST_SEEN_WITHIN = duration("400d")


def _where(site: str | None, boxes: list[str] | None, within: Duration) -> Where:
    where = Where().since(within)
    if site:
        where.tag("site", site)
    if boxes is not None:
        where.tag_in("box", boxes)
    return where


def collect(influx: Influx, site: str | None, window: Duration,
            boxes: list[str] | None = None) -> list[BoxStatus]:
    """Every box that wrote (only `boxes` when given; those that never wrote are listed
    too, as never seen)."""
    found: dict[str, BoxStatus] = {name: BoxStatus(name) for name in boxes or ()}

    def box(name: str) -> BoxStatus:
        return found.setdefault(name, BoxStatus(name))

    for s in influx.query(select([aggregate("LAST", "flows_exported")], "sitevis_collector",
                                 _where(site, boxes, LAST_SEEN_WITHIN), group_by=["box"])):
        box(s.tags["box"]).last_seen_ms = s.values[0][0]
    recent = _where(site, boxes, window)
    for s in influx.query(select(
            [aggregate("LAST", "interfaces_attached", "i"),
             aggregate("LAST", "spool_bytes", "spool"), aggregate("SUM", "overflow_events", "o"),
             aggregate("SUM", "ringbuf_lost", "r"), aggregate("SUM", "write_errors", "w"),
             aggregate("SUM", "points_folded", "f"), aggregate("SUM", "points_rejected", "x"),
             aggregate("LAST", "talkers_admitted", "t")],
            "sitevis_collector", recent, group_by=["box"])):
        row = dict(zip(s.columns, s.values[0], strict=True))
        b = box(s.tags["box"])
        b.interfaces, b.spool_bytes = row["i"], row["spool"]
        b.overflow_events, b.ringbuf_lost = row["o"] or 0, row["r"] or 0
        b.write_errors = row["w"] or 0
        b.refused_lost = row["x"] or 0
        b.refused = (row["f"] or 0) + b.refused_lost
        b.talkers = row["t"]
    for s in influx.query(select([aggregate("SUM", "packets", "p"),
                                  aggregate("SUM", "kernel_packets", "k")],
                                 "iface", recent, group_by=["box"])):
        row = dict(zip(s.columns, s.values[0], strict=True))
        b = box(s.tags["box"])
        b.packets, b.kernel_packets = row["p"] or 0, row["k"] or 0
    return sorted(found.values(), key=lambda b: b.box)


def table(statuses: list[BoxStatus], title: str, stale_after: float = STALE_AFTER_S,
          now_ms: int | None = None) -> Table:
    now_ms = now_ms or int(time.time() * 1000)
    out = Table(title=title, title_justify="left")
    for name in ("box", "last seen", "interfaces", "coverage", "talkers", "overflows",
                 "ring lost", "write errors", "refused", "spool"):
        out.add_column(name, justify="left" if name == "box" else "right")
    for s in statuses:
        age = s.age(now_ms)
        seen = "never" if age is None else f"{age:.0f} s ago"
        if age is None or age > stale_after:
            seen = f"[bold red]{seen}[/]"
        coverage = "—" if s.coverage is None else f"{100 * s.coverage:.1f} %"
        if s.coverage is not None and s.coverage < 0.99:
            coverage = f"[yellow]{coverage}[/]"
        # Refused points whose counts were folded into other rows lose addresses, not
        # counts; the ones that could not be folded are lost (red).
        refused = str(s.refused)
        if s.refused_lost:
            refused = f"[bold red]{s.refused} ({s.refused_lost} lost)[/]"
        elif s.refused:
            refused = f"[yellow]{s.refused} (folded)[/]"
        out.add_row(s.box, seen, str(s.interfaces if s.interfaces is not None else "—"),
                    coverage, "—" if s.talkers is None else str(s.talkers),
                    str(s.overflow_events), str(s.ringbuf_lost), str(s.write_errors),
                    refused, "—" if s.spool_bytes is None else f"{s.spool_bytes} B")
    return out


def silent(statuses: list[BoxStatus], stale_after: float = STALE_AFTER_S,
           now_ms: int | None = None) -> list[str]:
    now_ms = now_ms or int(time.time() * 1000)
    return [s.box for s in statuses
            if s.age(now_ms) is None or (s.age(now_ms) or 0) > stale_after]
