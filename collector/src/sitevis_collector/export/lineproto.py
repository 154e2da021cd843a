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
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
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
    head: str                                   # escaped measurement
    tag_values: Callable[[Mapping[str, str]], tuple[str, ...]]  # values sorted by key
    tag_prefixes: tuple[str, ...]               # ",escaped_key=" sorted by key
    field_prefixes: tuple[str, ...]             # "escaped_key=" in the point's order
    # The whole line as a %-template, for the common case: every tag value non-empty,
    # every field an int. One % is several times cheaper than joining the parts.
    template: str


_shapes: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _Shape] = {}


def _getter(keys: list[str]) -> Callable[[Mapping[str, str]], tuple[str, ...]]:
    if len(keys) > 1:
        return itemgetter(*keys)
    return lambda mapping: tuple(mapping[k] for k in keys)   # itemgetter(k) is no tuple


def _shape(measurement: str, tag_keys: tuple[str, ...], field_keys: tuple[str, ...]) -> _Shape:
    """Points of one measurement share their keys: escape and sort those once."""
    key = (measurement, tag_keys, field_keys)
    shape = _shapes.get(key)
    if shape is None:
        if not field_keys:
            raise ValueError(f"point of {measurement!r} has no fields")
        ordered = sorted(tag_keys)
        head = escape_measurement(measurement)
        tag_prefixes = tuple("," + escape_key(k) + "=" for k in ordered)
        field_prefixes = tuple(escape_key(k) + "=" for k in field_keys)
        pct = lambda text: text.replace("%", "%%")  # noqa: E731
        template = (pct(head) + "".join(pct(p) + "%s" for p in tag_prefixes) + " "
                    + ",".join(pct(p) + "%di" for p in field_prefixes) + " %d%s")
        shape = _Shape(head, _getter(ordered), tag_prefixes, field_prefixes, template)
        if len(_shapes) >= 1024:
            _shapes.clear()
        _shapes[key] = shape
    return shape


_INT_ONLY = {int}


def _line(point: Point, end: str) -> str:
    measurement, tags, fields, time_ns = point
    head, tag_values, tag_prefixes, field_prefixes, template = _shape(
        measurement, tuple(tags), tuple(fields))
    esc = _escaped
    values = tag_values(tags)
    fvalues = tuple(fields.values())
    ints = (set(map(type, fvalues)) == _INT_ONLY
            and min(fvalues) >= _INT64_MIN and max(fvalues) <= _INT64_MAX)  # type: ignore[operator]
    if ints and all(values) and type(time_ns) is int:   # the common case, e.g. every flow point
        return template % (*map(esc, values), *fvalues, time_ns, end)
    tag_text = "".join([p + esc(v) for p, v in zip(tag_prefixes, values, strict=True) if v])
    field_text = ",".join([p + format_value(v)
                           for p, v in zip(field_prefixes, fvalues, strict=True)])
    return f"{head}{tag_text} {field_text} {time_ns}{end}"


def encode(point: Point) -> str:
    """One line (no trailing newline). Tags sorted by key, as InfluxDB prefers."""
    return _line(point, "")


def encode_line(point: Point) -> bytes:
    """One UTF-8 encoded line ending in a newline."""
    return _line(point, "\n").encode()


def encode_lines(points: Iterable[Point]) -> list[bytes]:
    """UTF-8 encoded lines, each ending in a newline, ready to be batched."""
    return [_line(p, "\n").encode() for p in points]


_UNESCAPED_SPACE = re.compile(r"(?<!\\) ")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_EQUALS = re.compile(r"(?<!\\)=")
_ESCAPED = re.compile(r"\\([ ,=])")


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def parse_int_line(line: bytes) -> Point | None:
    """A line this module wrote back into a Point, when all its fields are integers (flow
    and iface points are); None for any other line. The writer reads refused lines back
    with it (delivery.py) to fold their counts."""
    text = line.decode("utf-8", "replace").rstrip("\n")
    parts = _UNESCAPED_SPACE.split(text)
    if len(parts) != 3:
        return None                     # a string field with spaces: not ours to fold
    head, field_text, stamp = parts
    names = _UNESCAPED_COMMA.split(head)
    tags: dict[str, str] = {}
    fields: dict[str, FieldValue] = {}
    try:
        for item in names[1:]:
            key, value = _UNESCAPED_EQUALS.split(item, maxsplit=1)
            tags[_unescape(key)] = _unescape(value)
        for item in _UNESCAPED_COMMA.split(field_text):
            key, value = _UNESCAPED_EQUALS.split(item, maxsplit=1)
            if not value.endswith("i"):
                return None
            fields[_unescape(key)] = int(value[:-1])
        return Point(_unescape(names[0]), tags, fields, int(stamp))
    except ValueError:
        return None
