"""sitevis.query: every outside value is checked against InfluxQL's grammar or bound."""

from __future__ import annotations

import pytest

from sitevis import query
from sitevis.query import QueryError, Where, aggregate, select

INJECTIONS = ["1h' OR 1=1", "1h; DROP DATABASE sitevis", "1h OR time > 0", "1h\n", " 1h",
              "1h ", "-1h", "1.5h", "1H", "h", "", "1", "1y", "\u0661h", "1h--", "1h/*"]


@pytest.mark.parametrize("text, ns", [
    ("90s", 90 * 10**9), ("15m", 900 * 10**9), ("1h30m", 5400 * 10**9), ("7d", 7 * 86400 * 10**9),
    ("2w", 14 * 86400 * 10**9), ("500ms", 5 * 10**8), ("10u", 10_000), ("10µ", 10_000),
    ("1ns", 1), ("1d12h", 36 * 3600 * 10**9),
])
def test_durations_follow_influxqls_grammar(text: str, ns: int):
    parsed = query.duration(text)
    assert (parsed.text, parsed.ns) == (text, ns)


@pytest.mark.parametrize("text", INJECTIONS)
def test_anything_else_is_not_a_duration(text: str):
    with pytest.raises(QueryError, match="is not a duration"):
        query.duration(text)


def test_zero_is_an_end_but_not_a_range():
    assert query.duration("0", allow_zero=True).ns == 0
    assert query.duration("0s", allow_zero=True).seconds == 0
    for text in ("0", "0s", "0h0m"):
        with pytest.raises(QueryError):
            query.duration(text)


def test_a_duration_beyond_int64_nanoseconds_is_refused():
    with pytest.raises(QueryError, match="longer than InfluxDB can count"):
        query.duration("99999999999w")
    with pytest.raises(QueryError):
        query.duration("1" * 300 + "s")


@pytest.mark.parametrize("name", ["raw", "long", "sitevis_meta", "_x", "autogen", "A1"])
def test_names_are_plain_identifiers_and_get_quoted(name: str):
    assert query.plain_name(name) == name
    assert query.identifier(name) == f'"{name}"'


@pytest.mark.parametrize("name", ['raw"; DROP DATABASE x; --', "raw.flow", "1raw", "", "ra w",
                                  "räw", 'a"b', "auto\n", "x" * 300])
def test_anything_else_is_not_a_name(name: str):
    with pytest.raises(QueryError, match="is not a name"):
        query.identifier(name)


@pytest.mark.parametrize("value", ["lab", "o'x", "site with spaces", "box-1.example.net",
                                   "x' OR '1'='1", "é"])
def test_tag_values_are_any_printable_line(value: str):
    assert query.tag_value(value) == value


@pytest.mark.parametrize("value", ["", "a\nb", "tab\there", "nul\x00", "x" * 257])
def test_empty_multiline_or_huge_tag_values_are_refused(value: str):
    with pytest.raises(QueryError, match="one printable line"):
        query.tag_value(value, "site")


@pytest.mark.parametrize("value", [0, -1, 10_001, True])
def test_counts_are_bounded(value: int):
    with pytest.raises(QueryError, match="between 1 and"):
        query.count(value)
    assert query.count(15) == 15


def test_a_regex_literal_cannot_leave_its_slashes():
    assert query.regex_literal("a/b.c") == r"a\/b\.c"
    assert query.regex_literal(r"x\/ OR 1=1") == r"x\\\/ OR 1=1"
    assert query.regex_literal("lab") == "lab"
    with pytest.raises(QueryError):
        query.regex_literal("a\nb")


def test_aggregates_are_a_known_function_of_a_checked_field():
    assert aggregate("SUM", "bytes", "b") == 'SUM("bytes") AS "b"'
    assert aggregate("LAST", "flows_exported") == 'LAST("flows_exported")'
    with pytest.raises(QueryError):
        aggregate("DROP", "bytes")
    with pytest.raises(QueryError):
        aggregate("SUM", 'bytes") FROM x; --')


def test_select_binds_every_value_and_keeps_the_text_fixed():
    hostile = "lab' OR '1'='1"
    where = (Where().since(query.duration("6h")).tag("site", hostile)
             .tag("src", "other", equal=False).tag_in("box", ["a", "b'; DROP"]))
    q = select([aggregate("SUM", "bytes", "bytes")], "flow", where, rp="long",
               group_by=("src", "dst"))
    assert q.text == ('SELECT SUM("bytes") AS "bytes" FROM "long"."flow" WHERE '
                      'time > now() - $p0 AND "site" = $p1 AND "src" != $p2 AND '
                      '("box" = $p3 OR "box" = $p4) GROUP BY "src", "dst"')
    assert q.params == {"p0": {"duration": "6h"}, "p1": hostile, "p2": "other", "p3": "a",
                        "p4": "b'; DROP"}


def test_select_without_conditions_or_policy():
    q = select([aggregate("COUNT", "bytes")], "flow", Where())
    assert (q.text, q.params) == ('SELECT COUNT("bytes") FROM "flow"', {})


@pytest.mark.parametrize("build", [
    lambda: select([], "flow", Where(), rp='raw"."x'),
    lambda: select([], "flow; DROP", Where()),
    lambda: select([], "flow", Where(), group_by=['box" LIMIT 1']),
    lambda: Where().tag('site" = 1 OR "x', "lab"),
    lambda: Where().tag("site", "a\nb"),
    lambda: Where().tag_in("box", []),
])
def test_every_piece_of_a_statement_is_checked(build):
    with pytest.raises(QueryError):
        build()
