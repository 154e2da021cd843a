"""Flows over time by one of top's groupings (the flow explorer's stacked chart), and the
explorer's address filter (src or dst). Same policy choice and steps as top and series."""

from __future__ import annotations

from collections.abc import Sequence

from sitevis.influx import Influx
from sitevis.portal.traffic import series, source, top
from sitevis.portal.traffic.timerange import NS, TimeRange
from sitevis.query import Duration, Where, aggregate, identifier, select_series, tag_value


class FlowWhere(Where):
    """Where, plus one value matched against either of several tags, bound like the rest."""

    def either(self, keys: Sequence[str], value: str) -> FlowWhere:
        terms = [f"{identifier(k)} = {self._bind(tag_value(value, k))}" for k in keys]
        self.conditions.append(f"({' OR '.join(terms)})")
        return self


def by_grouping(db: Influx, by: str, rng: TimeRange, where: Where
                ) -> tuple[str | None, Duration, list[series.Series]]:
    """bits/s and packets/s per key of top.GROUPINGS[by], in the policy top reads."""
    policy = source.for_addresses(db, rng) if by == "talkers" else source.policy(db, rng)
    step = series.step_for(rng, policy.interval)
    where.between(rng.start_ns, rng.end_ns)
    query = select_series([aggregate("SUM", "bytes", "bytes"),
                           aggregate("SUM", "packets", "packets")], "flow", where,
                          step=step, rp=policy.name, group_by=top.GROUPINGS[by])
    seconds = step.ns / NS
    out = []
    for s in db.query(query):
        idx = {c: i for i, c in enumerate(s.columns)}
        key = {t: s.tags.get(t, "") for t in top.GROUPINGS[by]}
        out.append(series.Series(
            key, [int(v[idx["time"]]) for v in s.values],
            [float(v[idx["bytes"]] or 0) * 8 / seconds for v in s.values],
            [float(v[idx["packets"]] or 0) / seconds for v in s.values]))
    return policy.name, step, out
