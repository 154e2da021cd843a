"""Points InfluxDB refused in a partial write: find them, and keep their counts.

InfluxDB 1.x answers "400 partial write: max-series-per-database limit exceeded ...
dropped=N" (or a field type conflict) after writing every other point of the body, and
does not say which N. Writing a point again with the same key and values changes nothing,
so the body is sent again in halves until each refused line stands alone (at most
MAX_REQUESTS requests per batch; past that the reported `dropped` counts are booked as
refused without knowing the lines).

A refused `flow` line's packets, bytes and flows are then added to a row of the same
(site, box, iface, dir, interval) that InfluxDB did accept and that carries no
addresses (a folded row, `src` = `other` preferred): rewriting an accepted row needs no
new series, so a limit cannot refuse it. Where the batch has no such row, they go to a
row of their own with proto, src and dst `other` and service `other/refused`. Running
totals are kept, so a later refusal for the same row rewrites it with the new sum (same
key: it replaces the earlier write). So Σ flow = iface holds even when InfluxDB refuses
points; whatever cannot be folded is counted as rejected.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sitevis_collector.export.lineproto import Point, encode_line, parse_int_line

MAX_REQUESTS = 200
REFUSED_SERVICE = "other/refused"
KEPT_TAGS = ("site", "box", "iface", "dir")
_DROPPED = re.compile(r"dropped=(\d+)")

Post = Callable[[bytes], tuple[str, str]]    # plain body -> (outcome, detail)


@dataclass
class Resolution:
    refused: list[bytes] = field(default_factory=list)   # lines known to be refused
    accepted: list[bytes] = field(default_factory=list)  # lines known to be written
    unresolved: int = 0     # refused points whose lines were not isolated (request cap)
    folded: int = 0         # of the refused, points whose counts are in refused rows


def find_refused(body: bytes, post: Post) -> Resolution | None:
    """Resend halves of a partially written body until the refused lines are known.
    None when a resend fails for a reason worth retrying (the caller resends it all)."""
    lines = body.splitlines(keepends=True)
    res = Resolution()
    if len(lines) == 1:
        res.refused = lines
        return res
    stack = _halves(lines)
    requests = 0
    while stack:
        part = stack.pop()
        requests += 1
        outcome, detail = post(b"".join(part))
        if outcome == "ok":
            res.accepted.extend(part)
            continue
        if outcome != "rejected":
            return None
        match = _DROPPED.search(detail)
        dropped = int(match[1]) if match else len(part)
        if len(part) == 1:
            res.refused.append(part[0])
        elif requests + len(stack) + 2 > MAX_REQUESTS:
            res.unresolved += min(dropped, len(part))
        else:
            stack.extend(_halves(part))
    return res


def _halves(lines: list[bytes]) -> list[list[bytes]]:
    mid = len(lines) // 2
    return [lines[:mid], lines[mid:]]


@dataclass
class Folded:
    lines: list[bytes]      # rows to write again, with the refused counts added
    points: int             # refused points whose counts they carry


_Group = tuple[tuple[str, ...], int]                # (site, box, iface, dir), time
_Target = tuple[tuple[tuple[str, str], ...], int]   # a row's whole tag set, time


class RefusedRows:
    """Rows that carry refused counts, with what was added to each so far (bounded)."""

    def __init__(self, keep: int = 4096) -> None:
        # target -> [the row as first written, packets, bytes, flows added]
        self._added: OrderedDict[_Target, tuple[Point, list[int]]] = OrderedDict()
        self._keep = keep

    def fold(self, refused: list[bytes], accepted: list[bytes]) -> Folded:
        targets = _targets(accepted)
        touched: set[_Target] = set()
        points = 0
        for line in refused:
            point = parse_int_line(line)
            if point is None or point.measurement != "flow" \
                    or not all(k in point.tags for k in KEPT_TAGS) \
                    or point.tags.get("service") == REFUSED_SERVICE:
                continue        # not a flow row, or a refused row itself: counted lost
            group = (tuple(point.tags[k] for k in KEPT_TAGS), point.time_ns)
            row = targets.get(group) or _own_row(group)
            key = (tuple(sorted(row.tags.items())), row.time_ns)
            _, added = self._added.setdefault(key, (row, [0, 0, 0]))
            self._added.move_to_end(key)
            added[0] += int(point.fields.get("packets", 0))
            added[1] += int(point.fields.get("bytes", 0))
            added[2] += int(point.fields.get("flows", 0))
            touched.add(key)
            points += 1
        lines = [encode_line(_with_added(*self._added[key])) for key in sorted(touched)]
        while len(self._added) > self._keep:
            self._added.popitem(last=False)
        return Folded(lines, points)


def _targets(accepted: list[bytes]) -> dict[_Group, Point]:
    """Per group, an accepted flow row without addresses (src `other` first)."""
    out: dict[_Group, Point] = {}
    for line in accepted:
        if not line.startswith(b"flow,"):
            continue
        point = parse_int_line(line)
        if point is None or not all(k in point.tags for k in KEPT_TAGS) \
                or _is_address(point.tags.get("src", "")):
            continue
        group = (tuple(point.tags[k] for k in KEPT_TAGS), point.time_ns)
        have = out.get(group)
        if have is None or (have.tags.get("src") != "other" and point.tags["src"] == "other"):
            out[group] = point
    return out


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _own_row(group: _Group) -> Point:
    tags, time_ns = group
    return Point("flow", {**dict(zip(KEPT_TAGS, tags, strict=True)), "proto": "other",
                          "src": "other", "dst": "other", "service": REFUSED_SERVICE},
                 {"packets": 0, "bytes": 0, "flows": 0, "tcp_flags": 0}, time_ns)


def _with_added(row: Point, added: list[int]) -> Point:
    fields = dict(row.fields)
    for name, extra in zip(("packets", "bytes", "flows"), added, strict=True):
        fields[name] = int(fields.get(name, 0)) + extra
    return Point(row.measurement, row.tags, fields, row.time_ns)
