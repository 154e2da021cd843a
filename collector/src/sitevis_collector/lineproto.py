"""InfluxDB line protocol (as InfluxDB 1.x parses it) for the points the collector writes.

Rules, checked against a real influxd 1.6:
- measurement: escape commas and spaces; tag keys, tag values, field keys: also ``=``.
- A backslash in those is literal, except that InfluxDB 1.x can neither store a backslash
  directly before ``,`` ``=`` space nor one at the end (``\\\\`` is not unescaped there).
  Such a backslash is written as U+FF3C FULLWIDTH REVERSE SOLIDUS, the one place where
  what is stored differs from what was given. Linux interface names never need it.
- string field values: escape double quotes and backslashes; newlines are fine.
- a tag whose value is empty is left out: InfluxDB rejects ``tag=``, and InfluxQL reads a
  missing tag as ``''``, so ``WHERE src = ''`` and ``GROUP BY src`` still see it empty.
- integers carry ``i``; booleans are ``true``/``false``; floats must be finite.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FieldValue = int | float | bool | str

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_LONE_BACKSLASH = re.compile(r"\\(?=[ ,=]|$)")
_FORBIDDEN = re.compile(r"[\n\r]")
_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\"})


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int


def _name(text: str, table: dict[int, str], what: str) -> str:
    if _FORBIDDEN.search(text):
        raise ValueError(f"{what} {text!r} contains a newline, which line protocol cannot carry")
    return _LONE_BACKSLASH.sub("\uff3c", text).translate(table)


def escape_measurement(name: str) -> str:
    if not name:
        raise ValueError("measurement name must not be empty")
    return _name(name, _MEASUREMENT, "measurement")


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _name(text, _KEY, "tag or field")


def format_value(value: FieldValue) -> str:
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer field {value} does not fit in int64")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"float field {value} is not finite")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    raise TypeError(f"unsupported field type {type(value).__name__}")


def encode(point: Point) -> str:
    """One line (no trailing newline). Tags sorted by key, as InfluxDB prefers."""
    parts = [escape_measurement(point.measurement)]
    for key in sorted(point.tags):
        value = point.tags[key]
        if value:
            parts.append(f"{escape_key(key)}={escape_key(value)}")
    if not point.fields:
        raise ValueError(f"point of {point.measurement!r} has no fields")
    fields = ",".join(f"{escape_key(k)}={format_value(v)}" for k, v in point.fields.items())
    return f"{','.join(parts)} {fields} {point.time_ns}"


def encode_lines(points: Iterable[Point]) -> list[bytes]:
    """UTF-8 encoded lines, each ending in a newline, ready to be batched."""
    return [(encode(p) + "\n").encode() for p in points]
