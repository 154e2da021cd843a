"""The time range of a traffic query: `since`/`until` (durations ago) or `start`/`end`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sitevis.query import QueryError, duration

NS = 1_000_000_000
MAX_RANGE_S = 400 * 86400      # the longest retention the influxdb role keeps


@dataclass(frozen=True)
class TimeRange:
    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / NS

    @property
    def start_s(self) -> int:
        return self.start_ns // NS

    @property
    def end_s(self) -> int:
        return self.end_ns // NS


def resolve(since: str | None, until: str | None, start: datetime | None,
            end: datetime | None, default_since: str = "1h") -> TimeRange:
    now = time.time_ns()
    if start is not None or end is not None:
        if since is not None or until is not None:
            raise QueryError("give since/until or start/end, not both")
        if start is None:
            raise QueryError("end needs a start")
        start_ns = int(start.timestamp() * NS)
        end_ns = int(end.timestamp() * NS) if end is not None else now
    else:
        start_ns = now - duration(since or default_since).ns
        end_ns = now - duration(until or "0", allow_zero=True).ns
    if start_ns >= end_ns:
        raise QueryError("the range ends before it starts")
    if start_ns < 0:
        raise QueryError("the range starts before 1970")
    if end_ns - start_ns > MAX_RANGE_S * NS:
        raise QueryError("a range is at most 400 days")
    return TimeRange(start_ns, end_ns)
