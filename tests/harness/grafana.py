"""What Grafana does to a dashboard's InfluxQL before sending it, so tests can run it.

Grafana substitutes its macros ($timeFilter, $__interval, $__interval_ms; $__from and
$__to, the range in epoch ms, also in query variables) and the template variables ($var,
${var}, ${var:text}, [[var]]); a value used inside an InfluxQL regex literal (=~ /.../)
is regex-escaped, and several values become (a|b).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REGEX_LITERAL = re.compile(r"=~\s*/((?:\\.|[^/\\])*)/")
VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")
# The characters Grafana's escapeRegex escapes ("/" too: it ends an InfluxQL regex).
REGEX_SPECIALS = re.compile(r"([\\^$*+?.()|\[\]{}/])")


@dataclass(frozen=True)
class Value:
    value: str | list[str]
    text: str | None = None


def escape(value: str) -> str:
    return REGEX_SPECIALS.sub(r"\\\1", value)


def _substitute(text: str, values: dict[str, Value], regex: bool) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1] or match[3] or match[4]
        if name not in values:
            raise KeyError(f"${name} is neither a Grafana macro nor a variable given")
        var = values[name]
        if match[2] == "text":
            return var.text if var.text is not None else str(var.value)
        items = var.value if isinstance(var.value, list) else [var.value]
        if regex:
            escaped = [escape(v) for v in items]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        return ",".join(items)
    return VARIABLE.sub(one, text)


def interpolate(query: str, values: dict[str, Value], *, start_ms: int, end_ms: int,
                interval_s: int) -> str:
    """The InfluxQL Grafana would send for this time range, bucket size and variables."""
    q = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval_ms", str(interval_s * 1000))
    q = q.replace("$__interval", f"{interval_s}s")
    values = {"__from": Value(str(start_ms)), "__to": Value(str(end_ms)), **values}
    out: list[str] = []
    pos = 0
    for match in REGEX_LITERAL.finditer(q):
        out.append(_substitute(q[pos:match.start(1)], values, regex=False))
        out.append(_substitute(match[1], values, regex=True))
        pos = match.end(1)
    out.append(_substitute(q[pos:], values, regex=False))
    return "".join(out)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(board: dict) -> Iterator[dict]:
    """Every panel, including those inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(board: dict) -> Iterator[tuple[dict, dict]]:
    """(panel, target) for every query of the dashboard."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def annotation_queries(board: dict) -> list[dict]:
    """The dashboard's annotation queries (each with its target and field mappings)."""
    return board.get("annotations", {}).get("list", [])


def variables(board: dict) -> list[dict]:
    return board.get("templating", {}).get("list", [])

