"""flows/top and packets over hand-written points: the "other" bucket (the collector's
top-N remainder, overflow rows, issue 14's folded rows), limits, and checked values."""

from __future__ import annotations

import re
import time

import pytest

from sitevis import toplist
from tests.integration.portal.conftest import DB, Site

pytestmark = pytest.mark.influxd


def flow(src: str, dst: str, service: str, nbytes: int, box: str = "lab-box") -> str:
    return (f"flow,site=lab,box={box},iface=eth0,dir=ingress,proto=udp,src={src},dst={dst},"
            f"service={service} bytes={nbytes}i,packets=1i {time.time_ns()}")


@pytest.fixture(scope="module")
def written(site: Site) -> Site:
    lines = [flow("198.18.0.1", "198.18.0.2", "udp/53", 5000),
             flow("198.18.0.3", "198.18.0.2", "udp/53", 4000),
             flow("198.18.0.4", "198.18.0.2", "udp/123", 3000),
             flow("other", "other", "other", 700),                 # top-N remainder
             flow("overflow", "overflow", "overflow/ipv4", 200),   # flow table full
             flow("lan", "other", "udp/other", 100),               # heavy-hitter fold
             'packet,site=lab,box=lab-box,iface=eth0,dir=ingress,proto=udp src="198.18.0.1",'
             f'dst="198.18.0.2",sport=5353i,dport=53i,length=142i,ttl=64i,tcp_flags=0i,'
             f'sample_rate=1000i {time.time_ns()}']
    assert site.influx.write(DB, "\n".join(lines), rp="raw") == 204
    return site


def test_talkers_fold_other_and_overflow_and_the_rows_past_the_limit(written: Site):
    top = written.get("viewer", "/api/flows/top/", by="talkers", limit=2, site="lab").json()
    assert [(r["key"]["src"], r["bytes"]) for r in top["rows"]] == [
        ("198.18.0.1", 5000), ("198.18.0.3", 4000)]
    assert top["other"]["bytes"] == 3000 + 700 + 200 + 100
    assert top["total_bytes"] == 13_000


def test_services_fold_the_remainder_and_per_protocol_others(written: Site):
    top = written.get("viewer", "/api/flows/top/", by="services", site="lab").json()
    assert [(r["key"]["service"], r["bytes"]) for r in top["rows"]] == [
        ("udp/53", 9000), ("udp/123", 3000), ("overflow/ipv4", 200)]
    assert top["other"]["bytes"] == 800


def test_sampled_packets_come_back_as_written(written: Site):
    found = written.get("viewer", "/api/packets/", site="lab", proto="udp").json()["packets"]
    assert [(p["src"], p["dport"], p["length"], p["box"]) for p in found] == [
        ("198.18.0.1", 53, 142, "lab-box")]


@pytest.mark.parametrize("params", [
    {"since": "1 hour"}, {"since": "1h; DROP DATABASE sitevis"}, {"by": "users"},
    {"limit": "0"}, {"limit": "100000"}, {"site": "a\nb"}, {"site": "x" * 300},
    {"since": "1h", "start": "2026-01-01T00:00:00Z"}, {"until": "2h", "since": "1h"},
    {"since": "500d"}, {"dir": "sideways"}, {"unknown": "1"}])
def test_bad_traffic_parameters_are_a_400_before_influxdb(written: Site, params: dict):
    answer = written.get("viewer", "/api/flows/top/", **params)
    assert answer.status_code == 400, answer.text


def test_a_quote_in_a_value_is_bound_not_pasted(written: Site):
    answer = written.get("viewer", "/api/flows/top/", site="lab' OR '1'='1")
    assert answer.status_code == 200 and answer.json()["rows"] == []
    assert written.influx.rows("SHOW DATABASES", db=DB)  # still there


def _panel_rows(html: str) -> list[tuple[str, int]]:
    return [(key, int(value)) for key, value in
            re.findall(r'<td class="key">([^<]*)</td><td data-value="(\d+)"', html)]


def test_top_lists_of_the_preset_ranges_come_computed_ahead(written: Site):
    """The health loop's pass computes the top lists of every preset range per site and
    direction; the overview and the API serve that pass to every user, each seeing only
    their sites, and compute an absolute range at request time."""
    portal = written.portal
    done = portal.manage("health", "--once")
    assert "top lists of 1h, 6h, 24h computed in" in done.stdout, done.stdout
    admin, labadmin = portal.login("admin"), portal.login("labadmin")
    url = f"{portal.url}/overview/top/talkers/"
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    ahead = admin.get(url, timeout=30)
    assert ahead.status_code == 200 and "data-computed-ns" in ahead.text
    served = written.get("admin", "/api/flows/top/", by="talkers", dir="ingress").json()
    now = written.get("admin", "/api/flows/top/", by="talkers", dir="ingress",
                      start=start).json()
    assert served["computed_ahead"] and now["computed_ahead"] is None
    assert served["rows"] == now["rows"] and served["other"] == now["other"]
    assert _panel_rows(ahead.text) == [
        (f"{r['key']['src']} → {r['key']['dst']}", r["bytes"]) for r in served["rows"]]
    # The pass is written back for the dashboards' 24-h panels (sitevis/toplist.py): the
    # panel's query, as Grafana sends it for site lab, reads the API's rows.
    day_talkers = written.get("admin", "/api/flows/top/", by="talkers", since="24h",
                              site="lab").json()
    panel = toplist.panel_query("talkers", "24h").replace("$site", "lab")
    assert [(r["src"], r["dst"], r["bytes"]) for r in written.influx.rows(panel, db=DB)] == [
        (r["key"]["src"], r["key"]["dst"], r["bytes"]) for r in day_talkers["rows"]] + [
        (None, None, day_talkers["other"]["bytes"])]
    day = written.get("admin", "/api/flows/top/", by="services", since="1d", dir="any").json()
    assert day["computed_ahead"] and [(r["key"]["service"], r["bytes"]) for r in day["rows"]][
        :2] == [("udp/53", 9000), ("udp/123", 3000)]
    # Newer traffic (of another site: the tests above read site lab only) is in the
    # next pass, not in the one served until then ...
    assert written.influx.write(DB, flow("198.18.0.9", "198.18.0.2", "udp/53", 9000,
                                         box="far-box").replace("site=lab", "site=far"),
                                rp="raw") == 204
    newest = ("198.18.0.9 → 198.18.0.2", 9000)
    assert newest not in _panel_rows(admin.get(url, timeout=30).text)
    # ... while an absolute range is computed now.
    absolute = admin.get(url, params={"start": start[:16]}, timeout=30).text
    assert "data-computed-ns" not in absolute and newest in _panel_rows(absolute)
    # The next pass has it, for whoever may see site far; a user limited to site lab is
    # served the same pass without it.
    portal.manage("health", "--once")
    assert newest == _panel_rows(admin.get(url, timeout=30).text)[0]
    limited = labadmin.get(url, timeout=30).text
    assert "data-computed-ns" in limited
    assert [key for key, _ in _panel_rows(limited)] == [
        "198.18.0.1 → 198.18.0.2", "198.18.0.3 → 198.18.0.2", "198.18.0.4 → 198.18.0.2"]
    lab_only = written.get("labviewer", "/api/flows/top/", by="talkers", since="24h").json()
    assert lab_only["computed_ahead"] and "198.18.0.9" not in str(lab_only["rows"])
    assert written.get("labviewer", "/api/flows/top/", since="24h",
                       site="far").status_code == 403


def test_rollouts_are_marked_on_the_time_charts_of_their_site_only(written: Site):
    """The worker's annotation points (docs/schema.md, `rollout`) on the overview's and a
    box page's traffic chart, drawn and listed; a user limited to site lab sees none of
    site far's."""
    at = time.time_ns() - 60 * 10**9
    lines = [f'rollout,site={site},playbook={book},outcome=started rollout_id={n}i,rc=-1i,'
             f'duration_s=0,check=false,launched_by="{who}",source="web" {at + n}'
             for n, site, book, who in ((1, "lab", "site", "ops"), (2, "far", "remove", "kim"))]
    assert written.influx.write(DB, "\n".join(lines), rp="raw") == 204
    portal = written.portal
    overview = portal.login("admin").get(f"{portal.url}/", timeout=60).text
    listed = re.search(r'<ul class="marks" data-marks="site-traffic">(.*?)</ul>', overview, re.S)
    assert listed, overview[-3000:]
    assert "site by ops: started" in listed[1] and "remove by kim: started" in listed[1]
    spec = re.search(r'<script id="site-traffic-spec" type="application/json">(.*?)</script>',
                     overview, re.S)
    assert spec and spec[1].count('"dash": "dot"') == 2
    limited = portal.login("labviewer").get(f"{portal.url}/", timeout=60).text
    assert "site by ops: started" in limited and "remove by kim" not in limited
    box = portal.login("labviewer").get(f"{portal.url}/boxes/lab/lab-box/", timeout=60).text
    assert re.search(r'data-marks="box-bits">.*site by ops: started', box, re.S), box[-2000:]
