"""status, top and report against a real influxd: bound values, the retention policy
selector, --limit and a secrets dir set in the inventory (no BPF: points are written)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitevis import status, talkers, toplist
from sitevis.influx import Influx
from sitevis.query import duration
from tests.harness.influx import InfluxServer, create_role_layout, find_influxd
from tests.integration.controller.sitevis_cli import sitevis

DB = "sitevis"
RAW_TALKER, LONG_TALKER, ODD_TALKER = "10.0.0.1", "10.9.9.9", "10.7.7.7"
ODD_SITE = "o'x /a\\b.*"  # quote, space, slash, backslash and regex characters in one name


@dataclass
class Site:
    influx: InfluxServer
    inventory: Path


def flow(site: str, src: str, service: str, nbytes: int, at: int, direction: str = "ingress",
         box: str = "b1") -> str:
    site_tag = site.replace(" ", "\\ ")  # line protocol: a backslash before a letter stays
    return (f"flow,site={site_tag},box={box},iface=eth0,dir={direction},src={src},"
            f"dst=10.0.0.2,service={service},proto=udp bytes={nbytes}i,packets=1i {at}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if find_influxd() is None:
        pytest.skip("influxd not installed (Debian package influxdb; ./run test installs it)")
    server = InfluxServer(find_influxd() or "")
    try:
        server.start()
        now = int(time.time())
        create_role_layout(server, DB)
        recent = now - 600
        raw = [flow("lab", RAW_TALKER, "udp/53", 1000, recent),
               flow("lab", "other", "udp/1", 50_000, recent),          # never a talker
               flow("lab", RAW_TALKER, "udp/53", 7000, recent, direction="egress"),
               flow(ODD_SITE, ODD_TALKER, "udp/99", 300, recent),
               f"sitevis_collector,site=lab,box=b1 flows_exported=1i,interfaces_attached=2i,"
               f"spool_bytes=0i,overflow_events=0i,ringbuf_lost=0i,write_errors=0i {recent}",
               f"sitevis_collector,site=lab,box=b2 flows_exported=1i,interfaces_attached=1i,"
               f"spool_bytes=0i,overflow_events=0i,ringbuf_lost=0i,write_errors=0i {recent}",
               f"iface,site=lab,box=b1,iface=eth0,dir=ingress packets=10i,kernel_packets=10i "
               f"{recent}"]
        assert server.write(DB, "\n".join(raw), precision="s", rp="raw") == 204
        long = [flow("lab", LONG_TALKER, "tcp/443", 99_999, now - 5 * 86400)]
        assert server.write(DB, "\n".join(long), precision="s", rp="long") == 204

        # An inventory that keeps its secrets elsewhere (sitevis_secrets_dir), as a site may.
        root = tmp_path_factory.mktemp("site")
        secrets = tmp_path_factory.mktemp("secrets")
        (root / "hosts.yml").write_text(
            "all:\n  children:\n    boxes:\n      hosts:\n        box1: {collector_box: b1}\n"
            "        box3: {collector_box: b3}\n    monitor:\n      hosts:\n        mon1:\n")
        (root / "group_vars").mkdir()
        (root / "group_vars" / "all.yml").write_text(f"sitevis_secrets_dir: {secrets}\n")
        (secrets / "monitor.json").write_text(json.dumps(
            {"url": server.url, "database": DB, "site": "lab", "username": None,
             "password": None}))
        yield Site(server, root)
    finally:
        server.cleanup()


def test_top_of_the_last_hour_reads_raw(site: Site):
    proc = sitevis("top", "-i", str(site.inventory), "--since", "1h")
    assert proc.returncode == 0, proc.stderr
    assert "(site lab, raw)" in proc.stdout
    assert RAW_TALKER in proc.stdout and "1.0 kB" in proc.stdout
    assert LONG_TALKER not in proc.stdout and "other" not in proc.stdout


def test_top_of_a_week_reads_long_like_the_dashboards(site: Site):
    proc = sitevis("top", "-i", str(site.inventory), "--since", "7d", "--by", "services")
    assert proc.returncode == 0, proc.stderr
    assert "(site lab, long)" in proc.stdout and "tcp/443" in proc.stdout
    forced = sitevis("top", "-i", str(site.inventory), "--since", "7d", "--rp", "raw")
    assert "(site lab, raw)" in forced.stdout and RAW_TALKER in forced.stdout


def test_talkers_of_a_week_read_raw_the_only_policy_with_addresses(site: Site):
    proc = sitevis("top", "-i", str(site.inventory), "--since", "7d")
    assert proc.returncode == 0, proc.stderr
    assert "(site lab, raw)" in proc.stdout and RAW_TALKER in proc.stdout
    assert LONG_TALKER not in proc.stdout


def test_top_of_a_computed_ahead_range_reads_the_portal_s_list(site: Site):
    """The portal's pass (toplist) serves 6 h; --now, a longer list, another range or a
    pass older than toplist.FRESH sum the flow series."""
    now_ns = time.time_ns()
    hour_ns = 3600 * 10**9

    def written(since: str, at_ns: int, src: str) -> None:
        lines = toplist.lines("lab", since, "talkers", "ingress",
                              [({"src": src, "dst": "198.18.0.1"}, 5_000_000, 40)],
                              (10, 1), at_ns - 6 * hour_ns, at_ns, at_ns)
        assert site.influx.write(DB, "\n".join(lines)) == 204

    written("6h", now_ns, "198.18.0.9")
    written("24h", now_ns - 20 * 60 * 10**9, "198.18.0.8")      # 20 min old: stale
    for since in ("6h", "360m"):
        ahead = sitevis("top", "-i", str(site.inventory), "--since", since)
        assert ahead.returncode == 0, ahead.stderr
        assert "computed ahead by the portal" in ahead.stdout
        assert "198.18.0.9" in ahead.stdout and "5.0 MB" in ahead.stdout
        assert RAW_TALKER not in ahead.stdout
    for asked in (["--since", "6h", "--now"], ["--since", "6h", "--limit", "21"],
                  ["--since", "24h"], ["--since", "6h", "--dir", "egress"]):
        summed = sitevis("top", "-i", str(site.inventory), *asked)
        assert summed.returncode == 0, (asked, summed.stderr)
        assert "(site lab, raw)" in summed.stdout and RAW_TALKER in summed.stdout, asked
        assert "198.18.0" not in summed.stdout, asked


def test_values_with_quotes_are_bound_not_pasted(site: Site):
    odd = sitevis("top", "--url", site.influx.url, "--site", ODD_SITE, "--since", "1h")
    assert odd.returncode == 0, odd.stderr
    assert ODD_TALKER in odd.stdout and RAW_TALKER not in odd.stdout
    # The classic injection is just a site name that no point has.
    injected = sitevis("top", "--url", site.influx.url, "--site", "lab' OR '1'='1")
    assert injected.returncode == 1
    assert injected.stderr.startswith("sitevis top: no flows in the last 1h")


def test_egress_counts_each_flow_once_from_the_other_side(site: Site):
    rows = talkers.top(Influx(site.influx.url, DB), "talkers", duration("1h"), "egress", "lab",
                       5, rp="raw")
    assert [(r.key, r.bytes) for r in rows] == [((RAW_TALKER, "10.0.0.2"), 7000)]


def test_status_limit_shows_the_selected_boxes_even_those_never_seen(site: Site):
    proc = sitevis("status", "-i", str(site.inventory), "--limit", "box*",
                   "--stale-after", "3600")
    assert proc.returncode == 3, proc.stderr         # b3 never wrote: silent
    boxes = {line.split("│")[1].strip() for line in proc.stdout.splitlines()
             if line.count("│") > 3}
    assert boxes - {"box"} == {"b1", "b3"}          # b2 wrote, but is not selected
    assert "silent: b3" in proc.stdout
    only_b1 = sitevis("status", "-i", str(site.inventory), "-l", "box1",
                      "--stale-after", "3600")
    assert only_b1.returncode == 0, only_b1.stdout + only_b1.stderr


def test_status_without_limit_lists_every_box_that_wrote(site: Site):
    found = status.collect(Influx(site.influx.url, DB), "lab", duration("1h"))
    assert [(s.box, s.interfaces) for s in found] == [("b1", 2), ("b2", 1)]
    assert found[0].coverage == 1.0


def test_report_draws_a_site_with_regex_characters_in_its_name(site: Site, tmp_path: Path):
    out = tmp_path / "odd.png"
    proc = sitevis("report", "--url", site.influx.url, "--site", ODD_SITE, "--since", "1h",
                   "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
