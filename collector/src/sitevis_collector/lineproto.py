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
from typing import NamedTuple

FieldValue = int | float | bool | str

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_LONE_BACKSLASH = re.compile(r"\\(?=[ ,=]|$)")
_FORBIDDEN = re.compile(r"[\n\r]")
_SPECIAL = re.compile(r"[ ,=\\\n\r]")
_CACHE_MAX = 1 << 16
_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\"})


class Point(NamedTuple):
    # A NamedTuple, not a frozen dataclass: an interval can hold 100k points, and its
    # construction is several times cheaper.
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
    if _SPECIAL.search(name) is None:
        return name
    return _name(name, _MEASUREMENT, "measurement")


def _escape_key(text: str) -> str:
    if _SPECIAL.search(text) is None:
        return text
    return _name(text, _KEY, "tag or field")


class _EscapeCache(dict[str, str]):
    """Tag keys and values repeat (site, box, iface, dir, proto, service, addresses), so
    each distinct string is escaped once; lookups of known ones stay in C."""

    def __missing__(self, text: str) -> str:
        out = _escape_key(text)
        if len(self) >= _CACHE_MAX:
            self.clear()
        self[text] = out
        return out


_escaped = _EscapeCache().__getitem__


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _escaped(text)


def format_value(value: FieldValue) -> str:
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:   # the common case
        return f"{value}i"
    # bool before int: it is a subclass of int.
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


class _Shape(NamedTuple):
    head: str                           # escaped measurement
    tags: tuple[tuple[str, str], ...]   # (key, "escaped_key=") sorted by key
    fields: tuple[str, ...]             # "escaped_key=" in the point's order


_shapes: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _Shape] = {}


def _shape(measurement: str, tag_keys: tuple[str, ...], field_keys: tuple[str, ...]) -> _Shape:
    """Points of one measurement share their keys: escape and sort those once."""
    key = (measurement, tag_keys, field_keys)
    shape = _shapes.get(key)
    if shape is None:
        if not field_keys:
            raise ValueError(f"point of {measurement!r} has no fields")
        shape = _Shape(escape_measurement(measurement),
                       tuple((k, escape_key(k) + "=") for k in sorted(tag_keys)),
                       tuple(escape_key(k) + "=" for k in field_keys))
        if len(_shapes) >= 1024:
            _shapes.clear()
        _shapes[key] = shape
    return shape


def encode(point: Point) -> str:
    """One line (no trailing newline). Tags sorted by key, as InfluxDB prefers."""
    measurement, tags, fields, time_ns = point
    head, tag_keys, field_keys = _shape(measurement, tuple(tags), tuple(fields))
    esc = _escaped
    parts = [head]
    for key, prefix in tag_keys:
        value = tags[key]
        if value:
            parts.append(prefix + esc(value))
    values = []
    for prefix, value in zip(field_keys, fields.values(), strict=True):
        if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            values.append(f"{prefix}{value}i")
        else:
            values.append(prefix + format_value(value))
    return f"{','.join(parts)} {','.join(values)} {time_ns}"


def encode_lines(points: Iterable[Point]) -> list[bytes]:
    """UTF-8 encoded lines, each ending in a newline, ready to be batched."""
    return [(encode(p) + "\n").encode() for p in points]
