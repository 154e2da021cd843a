"""The portal's pure parts: token strings, time ranges, steps, folding, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitevis.query import QueryError, Where, duration, select_points, select_series

pytest.importorskip("django", reason="the portal extra is not installed")

from sitevis.portal import config
from sitevis.portal.accounts import tokens
from sitevis.portal.traffic import series, timerange, top


def test_a_token_is_shown_as_prefix_id_secret_and_only_its_digest_matches():
    text, key_id, digest = tokens.new()
    parts = tokens.split(text)
    assert parts is not None and parts[0] == key_id
    assert tokens.matches(parts[1], digest) and not tokens.matches(parts[1] + "x", digest)
    assert digest not in text
    for bad in ("", "svp", "svp__x", "abc_123456789012_x", f"svp_{key_id}_"):
        assert tokens.split(bad) is None


def test_ranges_take_durations_or_datetimes_but_not_both():
    rng = timerange.resolve("2h", "1h", None, None)
    assert rng.seconds == pytest.approx(3600, abs=1)
    for args in (("1h", None, "x", None), ("1h", "2h", None, None), ("999d", None, None, None)):
        with pytest.raises(QueryError):
            timerange.resolve(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("since", "resolution", "step"), [
    ("15m", "10s", "10s"), ("6h", "10s", "1m"), ("2d", "10s", "10m"), ("7d", "5m", "30m"),
    ("400d", "5m", "1d")])
def test_the_step_keeps_a_range_under_the_point_budget(since, resolution, step):
    rng = timerange.TimeRange(0, duration(since).ns)
    chosen = series.step_for(rng, duration(resolution))
    assert chosen.text == step
    assert rng.seconds / chosen.seconds <= series.MAX_POINTS or step == "1d"


def test_folded_rows_are_other_and_overflow():
    assert top.folded("talkers", {"src": "overflow", "dst": "overflow"})
    assert top.folded("talkers", {"src": "10.0.0.1", "dst": "other"})
    assert not top.folded("talkers", {"src": "lan", "dst": "10.0.0.1"})
    assert top.folded("services", {"service": "tcp/other"})
    assert not top.folded("services", {"service": "tcp/443"})


def test_new_builders_bind_values_and_check_names():
    where = Where().between(1, 2).tag("site", "a'b")
    q = select_series(['SUM("bytes")'], "iface", where, step=duration("10s"), rp="raw",
                      group_by=["box"])
    assert q.text == ('SELECT SUM("bytes") FROM "raw"."iface" WHERE time >= $p0 AND '
                      'time < $p1 AND "site" = $p2 GROUP BY time(10s), "box" fill(0)')
    assert q.params == {"p0": 1, "p1": 2, "p2": "a'b"}
    p = select_points(["src", "dst"], "packet", Where(), limit=5)
    assert p.text == 'SELECT "src", "dst" FROM "packet" ORDER BY time DESC LIMIT 5'
    with pytest.raises(QueryError):
        Where().between(-1, 2)
    with pytest.raises(QueryError):
        select_points(['src"; DROP'], "packet", Where(), limit=5)


def test_config_errors_name_the_file_and_key(tmp_path: Path):
    path = tmp_path / "portal.yml"
    path.write_text("secret_key_file: /x\ndatabase: {engin: sqlite}\n")
    with pytest.raises(config.ConfigError, match=r"portal.yml: database.engin is not"):
        config.load(path)
    path.write_text("state_dir: /x\n")
    with pytest.raises(config.ConfigError, match="secret_key_file is required"):
        config.load(path)
    path.write_text("secret_key_file: /x\ndebug: true\nbogus: 1\n")
    with pytest.raises(config.ConfigError, match="bogus is not a setting"):
        config.load(path)
    with pytest.raises(config.ConfigError, match="No such file"):
        config.load(tmp_path / "missing.yml")
