"""The portal's rollouts in a time range (measurement `rollout`, docs/schema.md), to mark
on the pages' time charts as the dashboards' annotations mark them."""

from __future__ import annotations

from dataclasses import dataclass

from sitevis.influx import Influx
from sitevis.portal.traffic.timerange import TimeRange
from sitevis.query import Where, select_points

FIELDS = ("site", "playbook", "outcome", "launched_by", "rollout_id")
LIMIT = 50     # the newest; more would hide the traffic they mark


@dataclass(frozen=True)
class Mark:
    time_ms: int
    text: str          # "site by ops: started"
    rollout_id: int


def rollouts(db: Influx, rng: TimeRange, where: Where) -> list[Mark]:
    """Starts and ends of rollouts in `rng` within `where` (the user's sites), oldest
    first."""
    query = select_points(FIELDS, "rollout", where.copy().between(rng.start_ns, rng.end_ns),
                          limit=LIMIT)
    out = []
    for s in db.query(query):
        for values in s.values:
            row = dict(zip(s.columns, values, strict=True))
            out.append(Mark(int(row["time"]), f"{row.get('playbook') or 'rollout'} by "
                            f"{row.get('launched_by') or '?'}: {row.get('outcome') or '?'}",
                            int(row.get("rollout_id") or 0)))
    return sorted(out, key=lambda m: m.time_ms)
