"""InfluxQL built from checked pieces: the one place where outside values meet a query.

A value from a user (or read back from the database) reaches InfluxDB only in one of two
ways: checked against InfluxQL's own grammar (durations, identifiers, integers), or sent
as a bound parameter (`params=` of /query, which InfluxDB 1.6 replaces after parsing, so
it can never change the statement). No CLI concerns here: status, top, report and the
web portal share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

NS_PER_UNIT = {"ns": 1, "u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
               "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000,
               "w": 604_800_000_000_000}
# InfluxQL's duration literal: one or more <integer><unit>, e.g. 90s, 1h30m, 7d.
_UNITS = "ns|u|µ|ms|s|m|h|d|w"
DURATION = re.compile(rf"(?:[0-9]+(?:{_UNITS}))+")
DURATION_PART = re.compile(rf"([0-9]+)({_UNITS})")
# What the influxdb role names databases' policies and sitevis names fields and tags.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
REGEX_SPECIALS = re.compile(r"([\\^$*+?.()|\[\]{}/])")
AGGREGATES = frozenset({"SUM", "LAST", "FIRST", "MAX", "MIN", "MEAN", "COUNT"})
INT64_MAX = 2**63 - 1
MAX_TEXT = 256  # longer durations, names or tag values are typos or attacks


class QueryError(ValueError):
    """A value that must not reach InfluxDB: one line saying why."""


@dataclass(frozen=True)
class Duration:
    """A checked InfluxQL duration literal and its length."""

    text: str
    ns: int

    @property
    def seconds(self) -> int:
        return self.ns // 1_000_000_000


def duration(text: str, *, allow_zero: bool = False) -> Duration:
    """'90s', '1h30m', '7d' (InfluxQL's units ns u µ ms s m h d w); '0' only with
    allow_zero (an end of 'now')."""
    if allow_zero and text == "0":
        return Duration("0s", 0)
    if len(text) > MAX_TEXT or not DURATION.fullmatch(text):
        raise QueryError(f"{text!r} is not a duration like 30m, 1h or 7d")
    ns = sum(int(n) * NS_PER_UNIT[unit] for n, unit in DURATION_PART.findall(text))
    if ns > INT64_MAX:
        raise QueryError(f"{text!r} is longer than InfluxDB can count")
    if ns == 0 and not allow_zero:
        raise QueryError(f"{text!r} is no time at all")
    return Duration(text, ns)


def plain_name(text: str) -> str:
    """A database-side name (retention policy, measurement, field, tag key), checked."""
    if not IDENTIFIER.fullmatch(text) or len(text) > MAX_TEXT:
        raise QueryError(f"{text!r} is not a name (letters, digits, _; not first a digit)")
    return text


def identifier(text: str) -> str:
    """A checked name, double-quoted for InfluxQL."""
    return f'"{plain_name(text)}"'


def tag_value(value: str, what: str = "tag value") -> str:
    """A site or box name: one printable line, as the collector accepts it."""
    if not value or len(value) > MAX_TEXT or not value.isprintable():
        raise QueryError(f"{what} {value!r} must be one printable line of 1-{MAX_TEXT} "
                         "characters")
    return value


def count(value: int, what: str = "limit", maximum: int = 10_000) -> int:
    """A row count: 1..maximum."""
    if isinstance(value, bool) or not 1 <= value <= maximum:
        raise QueryError(f"{what} must be between 1 and {maximum}, not {value!r}")
    return value


def regex_literal(value: str) -> str:
    """A checked value matched exactly inside InfluxQL's /^...$/ (as Grafana escapes it);
    for the dashboards' templates, where a bound parameter cannot go."""
    return REGEX_SPECIALS.sub(r"\\\1", tag_value(value))


def aggregate(function: str, field_name: str, alias: str | None = None) -> str:
    """FUNCTION("field") [AS "alias"]."""
    if function not in AGGREGATES:
        raise QueryError(f"{function!r} is not an aggregate this builder knows")
    text = f"{function}({identifier(field_name)})"
    return f"{text} AS {identifier(alias)}" if alias else text


def source(measurement: str, rp: str | None = None) -> str:
    """"rp"."measurement", or the database's default policy without rp."""
    return f"{identifier(rp)}.{identifier(measurement)}" if rp else identifier(measurement)


@dataclass(frozen=True)
class Query:
    """One InfluxQL statement and the values bound to its $placeholders."""

    text: str
    params: dict[str, Any] = field(default_factory=dict)


class Where:
    """Conditions joined by AND; every value goes as a bound parameter ($p0, $p1, ...)."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: dict[str, Any] = {}

    def _bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def since(self, ago: Duration) -> Where:
        """Points newer than `ago` before now."""
        self.conditions.append(f"time > now() - {self._bind({'duration': ago.text})}")
        return self

    def between(self, start_ns: int, end_ns: int) -> Where:
        """Points in [start, end), epoch nanoseconds, bound as integers."""
        for value in (start_ns, end_ns):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
                raise QueryError(f"{value!r} is not a time InfluxDB can store")
        self.conditions.append(f"time >= {self._bind(start_ns)} AND time < {self._bind(end_ns)}")
        return self

    def tag(self, key: str, value: str, *, equal: bool = True) -> Where:
        op = "=" if equal else "!="
        self.conditions.append(f"{identifier(key)} {op} {self._bind(tag_value(value, key))}")
        return self

    def tag_in(self, key: str, values: Iterable[str]) -> Where:
        """key is one of values (at least one)."""
        quoted = identifier(key)
        terms = [f"{quoted} = {self._bind(tag_value(v, key))}" for v in values]
        if not terms:
            raise QueryError(f"no {key} to look for")
        self.conditions.append(f"({' OR '.join(terms)})")
        return self

    def text(self) -> str:
        return f" WHERE {' AND '.join(self.conditions)}" if self.conditions else ""

    def copy(self) -> Where:
        """The same conditions, to extend separately (one Where per query of a plan)."""
        other = Where()
        other.conditions, other.params = list(self.conditions), dict(self.params)
        return other


def combine(queries: Sequence[Query]) -> Query:
    """The statements as one request (InfluxDB answers each; Influx.query returns the
    series of all), each statement's parameters renamed so that they stay its own."""
    texts: list[str] = []
    params: dict[str, Any] = {}
    for i, q in enumerate(queries):
        texts.append(re.sub(r"\$(p\d+)\b", f"$s{i}\\1", q.text))
        params.update({f"s{i}{name}": value for name, value in q.params.items()})
    return Query("; ".join(texts), params)


def select(columns: Sequence[str], measurement: str, where: Where, *, rp: str | None = None,
           group_by: Sequence[str] = ()) -> Query:
    """SELECT columns FROM [rp.]measurement WHERE ... GROUP BY tags.

    `columns` come from aggregate(); group_by tags are checked identifiers."""
    group = f" GROUP BY {', '.join(identifier(t) for t in group_by)}" if group_by else ""
    text = (f"SELECT {', '.join(columns)} FROM {source(measurement, rp)}"
            f"{where.text()}{group}")
    return Query(text, dict(where.params))


def select_series(columns: Sequence[str], measurement: str, where: Where, *, step: Duration,
                  rp: str | None = None, group_by: Sequence[str] = ()) -> Query:
    """select() in buckets of `step` (a checked duration), empty buckets as 0: a time series
    per tag combination, as the dashboards' panels ask for it."""
    group = ", ".join([f"time({duration(step.text).text})",
                       *(identifier(t) for t in group_by)])
    text = (f"SELECT {', '.join(columns)} FROM {source(measurement, rp)}"
            f"{where.text()} GROUP BY {group} fill(0)")
    return Query(text, dict(where.params))


def select_points(fields: Sequence[str], measurement: str, where: Where, *, limit: int,
                  rp: str | None = None) -> Query:
    """The newest `limit` points' fields (and tags named among them), newest first."""
    columns = ", ".join(identifier(f) for f in fields)
    text = (f"SELECT {columns} FROM {source(measurement, rp)}{where.text()} "
            f"ORDER BY time DESC LIMIT {count(limit)}")
    return Query(text, dict(where.params))
