"""A box's health and every box's freshness, from the collector's self-metrics
(sitevis_collector, iface) in the default (raw) policy."""

from __future__ import annotations

from typing import Any

from sitevis.influx import Influx
from sitevis.query import Duration, Where, aggregate, duration, select

# Beyond any retention raw keeps: "last seen" looks this far back (as `sitevis status`).
LAST_SEEN_WITHIN = duration("400d")
STALE_AFTER_S = 60
SUMS = ("overflow_events", "ringbuf_lost", "write_errors", "filters_restored",
        "samples_rate_limited", "unaccounted")
LASTS = ("flows_exported", "interfaces_attached", "spool_bytes", "spool_files",
         "queue_bytes")


def box_health(db: Influx, site: str, box: str, window: Duration) -> dict[str, Any]:
    where = Where().since(window).tag("site", site).tag("box", box)
    columns = ([aggregate("SUM", f, f) for f in SUMS] + [aggregate("LAST", f, f) for f in LASTS]
               + [aggregate("MEAN", "bpf_ns_per_packet", "bpf_ns_per_packet")])
    out: dict[str, Any] = dict.fromkeys((*SUMS, *LASTS, "bpf_ns_per_packet"))
    for s in db.query(select(columns, "sitevis_collector", where)):
        out.update(zip(s.columns, s.values[0], strict=True))
    out.pop("time", None)
    iface = Where().since(window).tag("site", site).tag("box", box)
    packets = kernel = 0
    for s in db.query(select([aggregate("SUM", "packets", "p"),
                              aggregate("SUM", "kernel_packets", "k")], "iface", iface)):
        row = dict(zip(s.columns, s.values[0], strict=True))
        packets, kernel = row["p"] or 0, row["k"] or 0
    out["coverage"] = packets / kernel if kernel else None
    last = Where().since(LAST_SEEN_WITHIN).tag("site", site).tag("box", box)
    out["last_seen_ms"] = None
    for s in db.query(select([aggregate("LAST", "flows_exported")], "sitevis_collector",
                             last)):
        out["last_seen_ms"] = s.values[0][0]
    out["window"] = window.text
    return out


def collector_version(db: Influx, site: str, box: str) -> str | None:
    """The version the box's collector last reported (field `version`), if any."""
    where = Where().since(LAST_SEEN_WITHIN).tag("site", site).tag("box", box)
    for s in db.query(select([aggregate("LAST", "version", "version")], "sitevis_collector",
                             where)):
        found = s.values[0][1] if len(s.values[0]) > 1 else None
        return found if isinstance(found, str) else None
    return None


def freshness(db: Influx, where: Where) -> list[dict[str, Any]]:
    """(site, box, last seen) of every box that ever wrote, in the scope of `where`."""
    where.since(LAST_SEEN_WITHIN)
    rows = []
    for s in db.query(select([aggregate("LAST", "flows_exported")], "sitevis_collector",
                             where, group_by=["site", "box"])):
        rows.append({"site": s.tags.get("site", ""), "box": s.tags.get("box", ""),
                     "last_seen_ms": s.values[0][0]})
    return sorted(rows, key=lambda r: (r["site"], r["box"]))


def interfaces(db: Influx, site: str, box: str, window: Duration) -> dict[str, int]:
    """Interface name -> last time (ms) the box reported it, within `window`."""
    where = Where().since(window).tag("site", site).tag("box", box)
    found = {}
    for s in db.query(select([aggregate("LAST", "packets")], "iface", where,
                             group_by=["iface"])):
        found[s.tags.get("iface", "")] = s.values[0][0]
    return found
