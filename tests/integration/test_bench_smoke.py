"""The benchmark code path (bench/) with tiny parameters: it runs, counts exactly, renders.

The benchmarks themselves are not tests (they print ratios, see bench/README.md); this
only keeps their code working: a few thousand packets over 1000 flows, seconds not minutes.
"""

from __future__ import annotations

import pytest

from bench.common import unusable_reason


@pytest.fixture
def bench_ready(bcc_ready) -> None:
    reason = unusable_reason()
    if reason:
        pytest.skip(reason)
    from tests.harness.influx import find_influxd

    if find_influxd() is None:
        pytest.skip("influxd not installed (Debian package influxdb)")


def test_quick_benchmarks_count_exactly_and_render(bench_ready, capsys):
    from bench.all import run_all, summary

    tables = run_all(quick=True)

    by_number = {t.title.split(".", 1)[0]: t for t in tables}
    assert set(by_number) == {"1", "2", "3", "4"}

    accuracy = by_number["2"]
    assert accuracy.data["shares"] == {"64": 1.0, "512": 1.0}
    assert accuracy.data["flows"] == {"64": 1000, "512": 1000}
    assert accuracy.passed, accuracy.render()

    cost = by_number["1"]
    assert cost.data["exact"], cost.render()  # all three programs counted every packet

    cpu = by_number["3"]
    # Every burst fell inside its window, and each watcher saw exactly the packets of
    # the bursts it was switched on for (tcpdump switched by re-binding its socket).
    assert cpu.data["whole"] == cpu.data["phases"] == 7, cpu.render()
    assert cpu.data["exact"], cpu.render()

    user = by_number["4"]
    assert all(case["complete"] for case in user.data["cases"]), user.render()

    for table in tables:
        text = table.render()
        assert table.title in text
        assert all(column in text for column in table.columns)
        assert len(text.splitlines()) >= 4 + len(table.rows)
    text = summary(tables, 1.0).render()
    assert "PASS" in text
    assert "100.0000 %" in capsys.readouterr().out


def test_quick_site_scale_runs_against_the_role_influxdb(tmp_path, capsys):
    """bench.sitescale --quick: the role's influxd, every box's points by the collector's
    code, nothing refused, the new schema far below the old one in series."""
    import json

    from tests.harness.influx import find_influxd
    from tests.harness.tools import tool

    if find_influxd() is None:
        pytest.skip("influxd not installed (Debian package influxdb)")
    tool("ansible-playbook")
    from bench import sitescale

    out = tmp_path / "sitescale.json"
    code = sitescale.main(["--quick", "--profiles", "scan", "--json", str(out)])
    text = capsys.readouterr().out
    assert code in (0, 1), text           # 2: could not run
    data = json.loads(out.read_text())["profiles"]["scan"]
    old, new = data["old"], data["new"]
    assert old["refused"] == new["refused"] == 0, text
    assert new["hours"] == 1.0 and 0 < old["hours"] <= 1.0
    assert new["points"] > 0 and new["series"] < old["series"] / 5, text
    assert all(q["n"] >= 1 and q["p95_s"] > 0 for q in new["queries"]), text
    assert "Site scale, scan" in text and "boxes per monitor (new" in text
    # The month filled with the day's series, and what serves an operator timed on it.
    month = new["month"]
    assert month["days"] == 30 and month["points"] == month["keys"] * 29, text
    assert month["series"] > new["series"] and month["rss_queried"] > 0, text
    assert {"health evaluation", "health boxes refresh", "sitevis top", "dashboard"} <= {
        call["path"] for call in new["api"]}, text
