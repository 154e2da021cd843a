"""packets: the newest sampled packet records (raw policy only: they are not downsampled)."""

from __future__ import annotations

from typing import Any

from sitevis.influx import Influx
from sitevis.portal.traffic.timerange import TimeRange
from sitevis.query import Where, select_points

FIELDS = ("site", "box", "iface", "dir", "proto", "src", "dst", "sport", "dport", "length",
          "ttl", "tcp_flags", "sample_rate")


def sampled(db: Influx, rng: TimeRange, where: Where, limit: int) -> list[dict[str, Any]]:
    where.between(rng.start_ns, rng.end_ns)
    # The database's default policy is raw, where the collectors write packets.
    query = select_points(FIELDS, "packet", where, limit=limit)
    rows: list[dict[str, Any]] = []
    for s in db.query(query):
        rows.extend(dict(zip(s.columns, v, strict=True)) for v in s.values)
    return rows
