"""flows/top and packets over hand-written points: the "other" bucket (the collector's
top-N remainder, overflow rows, issue 14's folded rows), limits, and checked values."""

from __future__ import annotations

import time

import pytest

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
