"""Line protocol text, byte for byte (the real-server round trip is in integration)."""

from __future__ import annotations

import pytest
from sitevis_collector.export.lineproto import Point, encode, encode_lines


def line(tags=None, fields=None, measurement="m", ts=7) -> str:
    return encode(Point(measurement, tags or {}, fields or {"v": 1}, ts))


def test_tags_sorted_and_types_rendered():
    text = line({"z": "1", "a": "2", "m": "3"},
                {"i": 5, "neg": -3, "f": 1.5, "t": True, "n": False, "s": "x"})
    assert text == 'm,a=2,m=3,z=1 i=5i,neg=-3i,f=1.5,t=true,n=false,s="x" 7'


def test_integral_float_stays_float_and_integer_stays_integer():
    assert line(fields={"a": 2.0, "b": 2}) == "m a=2.0,b=2i 7"


def test_escaping_of_each_part():
    assert line({"k ,=": "v ,=\"'"}, {"f ,=": 'q"\\\n'}, measurement="me as,u=re") == (
        'me\\ as\\,u=re,k\\ \\,\\==v\\ \\,\\="\' f\\ \\,\\=="q\\"\\\\\n" 7')


def test_unicode_is_written_as_utf8():
    assert encode_lines([Point("m", {"if": "wlan☃é"}, {"s": "ünï"}, 1)]) == [
        'm,if=wlan☃é s="ünï" 1\n'.encode()]


def test_empty_tag_values_are_left_out():
    assert line({"src": "", "dst": "10.0.0.1"}) == "m,dst=10.0.0.1 v=1i 7"


def test_backslash_inside_a_value_is_kept_literal():
    assert line({"k": "a\\b"}) == "m,k=a\\b v=1i 7"


@pytest.mark.parametrize(("value", "written"), [
    ("tail\\", "tail\uff3c"),
    ("a\\,b", "a\uff3c\\,b"),
    ("a\\ b", "a\uff3c\\ b"),
    ("a\\=b", "a\uff3c\\=b"),
])
def test_backslash_influxdb_cannot_store_becomes_fullwidth(value, written):
    assert line({"k": value}) == f"m,k={written} v=1i 7"


@pytest.mark.parametrize(("point", "message"), [
    (Point("m", {"k": "a\nb"}, {"v": 1}, 1), "contains a newline"),
    (Point("m", {}, {}, 1), "has no fields"),
    (Point("", {}, {"v": 1}, 1), "must not be empty"),
    (Point("m", {}, {"v": 1 << 63}, 1), "does not fit in int64"),
    (Point("m", {}, {"v": float("nan")}, 1), "not finite"),
    (Point("m", {}, {"v": float("inf")}, 1), "not finite"),
])
def test_unwritable_points_raise(point, message):
    with pytest.raises(ValueError, match=message):
        encode(point)


def test_int64_bounds_are_accepted():
    assert line(fields={"a": (1 << 63) - 1, "b": -(1 << 63)}) == (
        "m a=9223372036854775807i,b=-9223372036854775808i 7")


def test_points_of_one_measurement_with_different_keys_each_encode_their_own():
    # The per-shape cache must not leak one point's keys into another's line.
    assert line({"b": "1", "a": "2"}) == "m,a=2,b=1 v=1i 7"
    assert line({"a": "2", "b": "1"}) == "m,a=2,b=1 v=1i 7"
    assert line({"a": "2", "c": "3"}) == "m,a=2,c=3 v=1i 7"
    assert line({"a": "2"}, {"w": 1.0, "v": "s"}) == 'm,a=2 w=1.0,v="s" 7'
    assert line({"a": "2"}, {"w": 3, "v": True}) == "m,a=2 w=3i,v=true 7"


def test_the_fast_path_and_the_general_path_write_the_same_line():
    # Flow points take a %-template; a float field or an empty tag takes the general path.
    tags = {"site": "s 1", "box": "b,=", "src": "10.0.0.1", "pct": "100%"}
    fast = line(tags, {"packets": 3, "bytes": 1 << 62, "neg": -(1 << 63)})
    assert fast == ("m,box=b\\,\\=,pct=100%,site=s\\ 1,src=10.0.0.1 "
                    "packets=3i,bytes=4611686018427387904i,neg=-9223372036854775808i 7")
    assert line({**tags, "src": ""}, {"packets": 3}) == (
        "m,box=b\\,\\=,pct=100%,site=s\\ 1 packets=3i 7")
    assert line(tags, {"packets": 3, "f": 0.5}) == (
        "m,box=b\\,\\=,pct=100%,site=s\\ 1,src=10.0.0.1 packets=3i,f=0.5 7")
    assert encode_lines([Point("m%", {"k%d": "v"}, {"f%s": 1}, 2)]) == [b"m%,k%d=v f%s=1i 2\n"]
