"""Where traffic comes from: the site's InfluxDB, the retention policy the dashboards
would read for a range, and the user's sites as a bound condition."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from sitevis import retention
from sitevis.influx import Influx, InfluxError
from sitevis.portal.traffic.timerange import NS, TimeRange
from sitevis.query import Duration, QueryError, Where, duration, identifier, select

RAW_INTERVAL = duration("10s")


class RangeRefused(QueryError):
    """A range the stored data cannot answer (e.g. talkers beyond raw's retention)."""


def influx(timeout: float | None = None) -> Influx:
    """The site's InfluxDB as the READ user; `timeout`: seconds a statement may take
    (default the config's influxdb.timeout_seconds, for a request)."""
    cfg = settings.SITEVIS_INFLUX
    password = (settings.CONFIG.read_secret(cfg.password_file, "influxdb.password_file")
                if cfg.password_file else None)
    return Influx(cfg.url, cfg.database, cfg.username, password,
                  timeout=cfg.timeout_seconds if timeout is None else timeout)


@dataclass(frozen=True)
class Policy:
    name: str | None            # None: the database's default policy (no selector)
    interval: Duration          # its resolution, the smallest useful step
    raw: str | None             # the finest policy (the one with src/dst)
    raw_age_s: int              # how far back raw reaches


def _selector(db: Influx) -> list[dict[str, Any]]:
    """The influxdb role's selector points, finest first ([] without one)."""
    query = select([identifier("rp"), identifier("interval")], "sitevis_rp", Where(),
                   rp="sitevis_meta")
    try:
        series = db.query(query)
    except InfluxError as err:
        if "not found" in str(err):
            return []
        raise
    rows = [dict(zip(s.columns, v, strict=True)) for s in series for v in s.values]
    return sorted(rows, key=lambda r: r["time"])


def policy(db: Influx, rng: TimeRange) -> Policy:
    """As the dashboards choose (sitevis.retention over the selector)."""
    points = _selector(db)
    name = retention.selected_rp(db, rng.start_s, rng.end_s)
    by_name = {p["rp"]: p for p in points}
    raw = points[0] if points else None
    interval = RAW_INTERVAL
    if name in by_name:
        interval = duration(str(by_name[name]["interval"]))
    raw_age = (raw["time"] // 1000 if raw else
               settings.CONFIG.raw_retention_days * 86400)
    return Policy(name, interval, raw["rp"] if raw else None, raw_age)


def for_addresses(db: Influx, rng: TimeRange) -> Policy:
    """A policy that keeps src/dst: the downsampled one keeps only bounded tags, so a
    range it would serve is read from raw while raw still reaches back to its start."""
    chosen = policy(db, rng)
    if chosen.name is None or chosen.name == chosen.raw:
        return chosen
    if rng.start_ns >= time.time_ns() - chosen.raw_age_s * NS:
        return Policy(chosen.raw, RAW_INTERVAL, chosen.raw, chosen.raw_age_s)
    raise RangeRefused(f"talkers are kept for {chosen.raw_age_s // 86400} days (the "
                       f"{chosen.raw} policy); this range starts earlier")


def scoped(where: Where, allowed: set[str] | None, site: str | None) -> Where | None:
    """Add the site conditions; None when the user may see nothing of what was asked."""
    if site is not None:
        if allowed is not None and site not in allowed:
            raise PermissionError(site)
        return where.tag("site", site)
    if allowed is None:
        return where
    if not allowed:
        return None
    return where.tag_in("site", sorted(allowed))
