"""The rules: what is wrong with one box, from its self-metrics over the window. Pure:
the numbers come from evaluate.py, the thresholds from the config's `health:`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sitevis.portal.config import HealthSettings
from sitevis.portal.health.models import Kind

# Kind -> (counter summed over the window, its threshold setting, what the detail says).
COUNTERS = {
    Kind.OVERFLOW: ("overflow_events", "max_overflow_events",
                    "packets found the flow table full"),
    Kind.RINGBUF_LOST: ("ringbuf_lost", "max_ringbuf_lost", "samples lost in the ring buffer"),
    Kind.FILTERS_RESTORED: ("filters_restored", "max_filters_restored",
                            "removed programs of ours put back"),
}
WRITE_LOSSES = ("write_errors", "points_rejected", "points_dropped")


@dataclass
class Verdict:
    """The kinds this evaluation could judge, and those it found wrong (with detail)."""

    checked: set[str] = field(default_factory=set)
    found: dict[str, str] = field(default_factory=dict)

    def judge(self, kind: str, wrong: bool, detail: str) -> None:
        self.checked.add(kind)
        if wrong:
            self.found[kind] = detail


def _n(value: Any) -> int:
    return int(value or 0)   # a field absent in the window (None) counted nothing


def judge(metrics: dict[str, Any] | None, last_seen_ms: int | None, now_ms: int,
          cfg: HealthSettings) -> Verdict:
    """A silent box is judged silent only: without data nothing else can be told."""
    verdict = Verdict()
    silent_ms = cfg.silent_intervals * cfg.interval_seconds * 1000
    if last_seen_ms is None or now_ms - last_seen_ms > silent_ms:
        ago = ("never reported" if last_seen_ms is None else
               f"last self-metrics {(now_ms - last_seen_ms) // 1000} s ago")
        verdict.judge(Kind.SILENT, True, f"{ago} (allowed {silent_ms // 1000} s)")
        return verdict
    verdict.judge(Kind.SILENT, False, "")
    if metrics is None:
        return verdict
    for kind, (counter, setting, what) in COUNTERS.items():
        value = _n(metrics.get(counter))
        verdict.judge(kind, value > getattr(cfg, setting), f"{value} {what}")
    losses = {name: _n(metrics.get(name)) for name in WRITE_LOSSES}
    verdict.judge(Kind.WRITE_ERRORS, sum(losses.values()) > cfg.max_write_errors,
                  ", ".join(f"{name} {value}" for name, value in losses.items()))
    coverage = metrics.get("coverage")
    if coverage is not None:
        verdict.judge(Kind.COVERAGE, coverage < cfg.min_coverage,
                      f"coverage {coverage:.4f} (minimum {cfg.min_coverage})")
    first, last = metrics.get("spool_first"), metrics.get("spool_bytes")
    if first is not None and last is not None:
        verdict.judge(Kind.SPOOL_GROWING, last - first > cfg.max_spool_growth_bytes,
                      f"spool {first} -> {last} bytes")
    return verdict
