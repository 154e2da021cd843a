"""Awkward names and values go through the real influxd and come back unchanged."""

from __future__ import annotations

from pathlib import Path

from sitevis_collector.config import parse_config
from sitevis_collector.export.delivery import InfluxWriter
from sitevis_collector.export.lineproto import Point, encode_lines

from tests.harness.influx import InfluxServer

DB = "roundtrip"
AWKWARD = [
    "plain",
    "with space",
    "with,comma",
    "with=equals",
    'with"double"quotes',
    "with'single'quote",
    "back\\slash",
    "double\\\\backslash",
    "ünïcödé ☃ 雪",
    " lead and trail ",
    "all of, them= \"x\" \\y ☃",
]
STRINGS = [*AWKWARD, "line\nbreak", "ends in backslash\\", 'ends in quote"']


def test_tag_values_keys_and_strings_round_trip_unchanged(influxdb: InfluxServer):
    influxdb.query(f"CREATE DATABASE {DB}")
    points = [
        Point("rt", {"iface": value, "site": "s"}, {"n": i, "s": STRINGS[i]}, 1_000 + i)
        for i, value in enumerate(AWKWARD)
    ]
    points += [Point("rt", {"iface": "x", "site": "s"}, {"n": i, "s": STRINGS[i]}, 1_000 + i)
               for i in range(len(AWKWARD), len(STRINGS))]
    body = b"".join(encode_lines(points)).decode()
    assert influxdb.write(DB, body) == 204

    rows = influxdb.rows("SELECT iface, n, s FROM rt", db=DB)
    by_n = {row["n"]: row for row in rows}
    assert len(by_n) == len(STRINGS)
    for i, value in enumerate(AWKWARD):
        assert by_n[i]["iface"] == value
    for i, text in enumerate(STRINGS):
        assert by_n[i]["s"] == text

    # Tag keys and a measurement name with the same characters.
    key_points = [Point("m e,a=s", {value: "v"}, {value: i}, 5)
                  for i, value in enumerate(AWKWARD)]
    assert influxdb.write(DB, b"".join(encode_lines(key_points)).decode()) == 204
    names = influxdb.query("SHOW MEASUREMENTS", db=DB)["results"][0]["series"][0]["values"]
    assert ["m e,a=s"] in names
    tag_keys = influxdb.query('SHOW TAG KEYS FROM "m e,a=s"', db=DB)["results"][0]
    assert sorted(v[0] for v in tag_keys["series"][0]["values"]) == sorted(AWKWARD)
    field_keys = influxdb.query('SHOW FIELD KEYS FROM "m e,a=s"', db=DB)["results"][0]
    assert sorted(v[0] for v in field_keys["series"][0]["values"]) == sorted(AWKWARD)


def test_empty_tag_is_read_back_as_empty(influxdb: InfluxServer):
    influxdb.query(f"CREATE DATABASE {DB}")
    lines = encode_lines([Point("flow", {"src": "", "dst": "", "proto": "eth"}, {"n": 1}, 9)])
    assert influxdb.write(DB, b"".join(lines).decode()) == 204
    rows = influxdb.rows("SELECT n FROM flow WHERE src = '' GROUP BY src, proto", db=DB)
    assert rows == [{"src": "", "proto": "eth", "time": 9, "n": 1}]


def test_unstorable_backslash_is_stored_as_fullwidth(influxdb: InfluxServer):
    influxdb.query(f"CREATE DATABASE {DB}")
    lines = encode_lines([Point("bs", {"k": "tail\\"}, {"n": 1}, 1),
                          Point("bs", {"k": "a\\,b"}, {"n": 2}, 1)])
    assert influxdb.write(DB, b"".join(lines).decode()) == 204
    got = sorted(row["k"] for row in influxdb.rows("SELECT k, n FROM bs", db=DB))
    assert got == ["a\uff3c,b", "tail\uff3c"]


def test_awkward_points_round_trip_through_the_writer(influxdb: InfluxServer, tmp_path: Path):
    """The full path: gzip, batching, POST /write, with site and iface names to match."""
    influxdb.query(f"CREATE DATABASE {DB}")
    cfg = parse_config({"site": "site, \"one\"=☃", "box": "box 1",
                        "influxdb": {"url": influxdb.url, "database": DB,
                                     "batch_max_bytes": 1024},
                        "spool": {"dir": str(tmp_path / "spool")}})
    writer = InfluxWriter(cfg.influxdb, cfg.spool)
    try:
        writer.submit(Point("iface", {"site": cfg.site, "box": cfg.box, "iface": value,
                                      "dir": "ingress"},
                            {"packets": i, "bytes": 10 * i}, 2_000)
                      for i, value in enumerate(AWKWARD))
        assert writer.flush(10)
    finally:
        writer.close(1)
    rows = influxdb.rows("SELECT * FROM iface", db=DB)
    got = sorted((r["site"], r["box"], r["iface"], r["packets"], r["bytes"]) for r in rows)
    assert got == sorted((cfg.site, cfg.box, value, i, 10 * i) for i, value in enumerate(AWKWARD))
