"""Health of many boxes in one query (the overview) and of one box over time (the box
page): the fields of health.box_health, grouped by box or by time bucket instead of
summed for one box, so a 100-box site costs two queries, not four hundred."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sitevis.influx import Influx
from sitevis.portal.traffic import health, series, source
from sitevis.portal.traffic.timerange import TimeRange
from sitevis.query import Duration, Where, aggregate, select, select_series

BoxKey = tuple[str, str]  # (site, box)


def _columns() -> list[str]:
    return ([aggregate("SUM", f, f) for f in health.SUMS]
            + [aggregate("LAST", f, f) for f in health.LASTS]
            + [aggregate("MEAN", "bpf_ns_per_packet", "bpf_ns_per_packet")])


def per_box(db: Influx, scope: Callable[[], Where], rng: TimeRange
            ) -> dict[BoxKey, dict[str, Any]]:
    """(site, box) -> health.box_health's counters over the range, coverage, and the
    box's reporting interval (ms, from its first point and point count; None with fewer
    than two). `scope()` makes a fresh Where with the user's site conditions."""
    out: dict[BoxKey, dict[str, Any]] = {}
    columns = [*_columns(), aggregate("COUNT", "flows_exported", "points")]
    for s in db.query(select(columns, "sitevis_collector",
                             scope().between(rng.start_ns, rng.end_ns),
                             group_by=["site", "box"])):
        row = dict(zip(s.columns, s.values[0], strict=True))
        row.pop("time", None)
        out[(s.tags.get("site", ""), s.tags.get("box", ""))] = {**row, "coverage": None,
                                                               "interval_ms": None}
    # A selector alone returns its point's time: the first report in the range.
    for s in db.query(select([aggregate("FIRST", "flows_exported")], "sitevis_collector",
                             scope().between(rng.start_ns, rng.end_ns),
                             group_by=["site", "box"])):
        key = (s.tags.get("site", ""), s.tags.get("box", ""))
        if key in out:
            out[key]["first_ms"] = s.values[0][0]
    for s in db.query(select([aggregate("SUM", "packets", "p"),
                              aggregate("SUM", "kernel_packets", "k")], "iface",
                             scope().between(rng.start_ns, rng.end_ns),
                             group_by=["site", "box"])):
        row = dict(zip(s.columns, s.values[0], strict=True))
        key = (s.tags.get("site", ""), s.tags.get("box", ""))
        found = out.setdefault(key, dict.fromkeys((*health.SUMS, *health.LASTS,
                                                   "bpf_ns_per_packet", "interval_ms")))
        found["coverage"] = (row["p"] or 0) / row["k"] if row["k"] else None
    return out


def over_time(db: Influx, rng: TimeRange, where: Where) -> tuple[Duration, list[int],
                                                                  dict[str, list[float]]]:
    """A box's counters per step (sums; bpf_ns_per_packet the mean, spool the last):
    the step, bucket times (ms) and one list per field. Raw only (not downsampled)."""
    step = series.step_for(rng, source.RAW_INTERVAL)
    where.between(rng.start_ns, rng.end_ns)
    columns = ([aggregate("SUM", f, f) for f in health.SUMS]
               + [aggregate("MEAN", "bpf_ns_per_packet", "bpf_ns_per_packet"),
                  aggregate("LAST", "spool_bytes", "spool_bytes")])
    times: list[int] = []
    fields: dict[str, list[float]] = {}
    for s in db.query(select_series(columns, "sitevis_collector", where, step=step)):
        idx = {c: i for i, c in enumerate(s.columns)}
        times = [int(v[idx["time"]]) for v in s.values]
        fields = {c: [float(v[i] or 0) for v in s.values] for c, i in idx.items() if c != "time"}
    return step, times, fields
