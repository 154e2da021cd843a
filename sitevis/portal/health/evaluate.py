"""One evaluation: every inventory box's self-metrics over the window (through the
traffic app's queries and sitevis.query), judged by rules.py; issues opened, counted or
resolved accordingly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sitevis.influx import Influx
from sitevis.portal.config import HealthSettings
from sitevis.portal.health import lifecycle, rules
from sitevis.portal.inventory.models import Box
from sitevis.portal.traffic import health, sitehealth
from sitevis.portal.traffic.timerange import NS, TimeRange
from sitevis.query import Where, aggregate, select

BoxKey = tuple[str, str]   # (site, box)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Summary:
    boxes: int
    findings: int
    opened: int
    resolved: int

    def line(self) -> str:
        return (f"{self.boxes} boxes, {self.findings} findings, {self.opened} issues opened, "
                f"{self.resolved} resolved")


def _write_losses(db: Influx, rng: TimeRange) -> dict[BoxKey, dict[str, Any]]:
    """What health.SUMS leaves out: refused and dropped points, and the spool at the
    window's start (growth = last - first)."""
    columns = [*(aggregate("SUM", f, f) for f in ("points_rejected", "points_dropped")),
               aggregate("FIRST", "spool_bytes", "spool_first")]
    out = {}
    for s in db.query(select(columns, "sitevis_collector",
                             Where().between(rng.start_ns, rng.end_ns),
                             group_by=["site", "box"])):
        row = dict(zip(s.columns, s.values[0], strict=True))
        row.pop("time", None)
        out[(s.tags.get("site", ""), s.tags.get("box", ""))] = row
    return out


def evaluate(db: Influx, now: datetime, cfg: HealthSettings) -> Summary:
    # Exact nanoseconds (a float would be off by hundreds); a point stamped `now` counts.
    end_ns = (now - EPOCH) // timedelta(microseconds=1) * 1000 + 1
    window = TimeRange(end_ns - cfg.window_intervals * cfg.interval_seconds * NS, end_ns)
    since = max(0, end_ns - health.LAST_SEEN_WITHIN.ns)
    last_seen = {(r["site"], r["box"]): r["last_seen_ms"]
                 for r in health.freshness(db, Where().between(since, end_ns))}
    metrics = sitehealth.per_box(db, Where, window)
    for key, extra in _write_losses(db, window).items():
        metrics.setdefault(key, {}).update(extra)
    now_ms = end_ns // 1_000_000
    boxes = findings = opened = resolved = 0
    for box in Box.objects.select_related("site"):
        key = (box.site.name, box.name)
        verdict = rules.judge(metrics.get(key), last_seen.get(key), now_ms, cfg)
        boxes += 1
        for kind, detail in verdict.found.items():
            findings += 1
            issue = lifecycle.open_finding(box, kind, detail, now)
            opened += issue.count == 1
        resolved += len(lifecycle.healthy(box, verdict.checked - set(verdict.found),
                                          cfg.resolve_after, now))
    return Summary(boxes, findings, opened, resolved)
