"""flows/top: the largest talkers, services, protocols or boxes over a range, the rest in
one "other" row, as the site overview's panels sum them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sitevis import rollup
from sitevis.influx import Influx
from sitevis.portal.traffic import source
from sitevis.portal.traffic.timerange import TimeRange
from sitevis.query import Where

# The site overview's groupings (sitevis/overview.py: TOP_TALKERS, TOP_SERVICES,
# PROTOCOL_MIX) plus boxes.
GROUPINGS = {
    "talkers": ("src", "dst"),
    "services": ("service",),
    "protocols": ("proto",),
    "boxes": ("box",),
}
# Values that name no real talker, service or protocol: the collector's top-N remainder,
# overflow rows, and the heavy-hitter budget's folded rows (issue 14). They go to "other".
FOLDED = frozenset({"other", "overflow"})


@dataclass
class Row:
    key: dict[str, str]
    bytes: int = 0
    packets: int = 0


@dataclass
class TopResult:
    rp: str | None
    rows: list[Row] = field(default_factory=list)
    other: Row = field(default_factory=lambda: Row({}))

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.rows) + self.other.bytes


def folded(by: str, key: dict[str, str]) -> bool:
    if by == "talkers":
        return key["src"] in FOLDED or key["dst"] in FOLDED
    if by == "services":
        return key["service"] == "other" or key["service"].endswith("/other")
    return any(v == "other" for v in key.values())


def top(db: Influx, by: str, rng: TimeRange, where: Where, limit: int) -> TopResult:
    """`where` holds the scope and tag filters; the range and policy are added here.
    From the raw policy the sums come through its rollups (sitevis.rollup): whole hours
    and 5-minute buckets where they are final, raw points for the edges."""
    tags = GROUPINGS[by]
    policy = policy_for(db, by, rng)
    sums = rollup.totals(db, policy.name, where, ("bytes", "packets"), tags,
                         rng.start_ns, rng.end_ns)
    return rank(by, policy.name, {key: (value["bytes"], value["packets"])
                                  for key, value in sums.items()}, limit)


def policy_for(db: Influx, by: str, rng: TimeRange) -> source.Policy:
    """The policy a grouping over `rng` reads: the dashboards' choice, but raw for
    talkers (the only one with addresses)."""
    return source.for_addresses(db, rng) if by == "talkers" else source.policy(db, rng)


def rank(by: str, rp: str | None, sums: dict[tuple[str, ...], tuple[int, int]],
         limit: int) -> TopResult:
    """The `limit` largest of `sums` (key: the grouping's tag values; value: bytes,
    packets) by bytes; folded keys and the rest in "other"."""
    tags = GROUPINGS[by]
    result = TopResult(rp)
    rows = []
    for key, (nbytes, packets) in sums.items():
        row = Row(dict(zip(tags, key, strict=True)), nbytes, packets)
        if folded(by, row.key):
            result.other.bytes += row.bytes
            result.other.packets += row.packets
        else:
            rows.append(row)
    rows.sort(key=lambda r: (-r.bytes, -r.packets, tuple(r.key.values())))
    result.rows = rows[:limit]
    for row in rows[limit:]:
        result.other.bytes += row.bytes
        result.other.packets += row.packets
    return result
