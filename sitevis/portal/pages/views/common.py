"""What several pages compute the same way from the query layer's answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sitevis.portal.traffic import series
from sitevis.portal.traffic.timerange import NS, TimeRange

# health.STALE_AFTER_S's 60 s is six default (10 s) intervals; a box is late after two
# of its own, measured from its points (sitehealth.per_box), 10 s when it has too few.
DEFAULT_INTERVAL_MS = 10_000


@dataclass
class Totals:
    """Bytes and packets a series moved over the range (its rates times its step), and
    its mean rates over the range."""

    bytes: int
    packets: int
    bits_per_s: float
    packets_per_s: float


def totals(s: series.Series, step_s: float, rng: TimeRange) -> Totals:
    moved = sum(s.bits_per_s) * step_s / 8
    packets = sum(s.packets_per_s) * step_s
    seconds = rng.seconds
    return Totals(round(moved), round(packets), moved * 8 / seconds, packets / seconds)


def late(last_seen_ms: int | None, interval_ms: float | None, now_ms: float) -> bool:
    if last_seen_ms is None:
        return True
    return now_ms - last_seen_ms > 2 * (interval_ms or DEFAULT_INTERVAL_MS)


def interval_ms(health: dict[str, Any], last_seen_ms: int | None, rng: TimeRange) -> float | None:
    """A box's reporting interval from its points in the range."""
    points, first = health.get("points") or 0, health.get("first_ms")
    if points < 2 or first is None or last_seen_ms is None:
        return None
    last = min(last_seen_ms, rng.end_ns // (NS // 1000))
    return (last - first) / (points - 1) if last > first else None
