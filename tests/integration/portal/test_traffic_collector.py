"""The API's traffic over what real collectors wrote: two boxes' collectors over real
veths into a private influxd; top talkers, services and series equal what InfluxDB
holds and what was sent; health, status and refresh see both boxes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from sitevis_collector import __version__ as COLLECTOR_VERSION

from tests.harness.bpf import bcc_unusable_reason
from tests.harness.influx import InfluxServer
from tests.harness.netns import HostLink, create_link, destroy_link
from tests.harness.portal import PortalServer
from tests.integration.collector.collector_proc import (
    FRAME_BYTES,
    PORT,
    collect_boxes,
)
from tests.integration.portal.conftest import DB, portal_available, start_influx

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.influxd]
SENT = {"box-a": 500, "box-b": 200}


@dataclass
class Traffic:
    influx: InfluxServer
    portal: PortalServer
    links: dict[str, HostLink]
    token: str

    def get(self, path: str, **params: object) -> dict:
        answer = self.portal.api(self.token).get(f"{self.portal.url}{path}", params=params,
                                                 timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    reason = bcc_unusable_reason() or portal_available()
    if reason:
        pytest.skip(reason)
    influx = start_influx()
    portal = PortalServer(influx.url)
    links: dict[str, HostLink] = {}
    try:
        for name in SENT:
            links[name] = create_link()
        portal.start()
        collect_boxes(links, SENT, influx.url, tmp_path_factory.mktemp)
        portal.user("admin", "admin")
        token = portal.token("admin", write=True)
        api = portal.api(token)
        made = api.post(f"{portal.url}/api/sites/", json={"name": "lab"}).json()
        for name in SENT:
            api.post(f"{portal.url}/api/boxes/", json={"name": name, "site": made["id"]})
        yield Traffic(influx, portal, links, token)
    finally:
        portal.cleanup()
        for link in links.values():
            destroy_link(link)
        influx.cleanup()


def influx_sums(influx: InfluxServer, query: str) -> list[dict]:
    return influx.rows(query, db=DB)


def test_top_talkers_are_the_flows_sent_and_what_influxdb_holds(traffic: Traffic):
    top = traffic.get("/api/flows/top/", by="talkers", dir="ingress", since="1h", limit=50)
    assert top["rp"] == "raw"
    rows = {(r["key"]["src"], r["key"]["dst"]): r for r in top["rows"]}
    for name, count in SENT.items():
        link = traffic.links[name]
        row = rows[(link.peer.ip, link.ip)]
        stored = influx_sums(traffic.influx, (
            "SELECT SUM(bytes) AS b, SUM(packets) AS p FROM raw.flow WHERE dir = 'ingress' "
            f"AND src = '{link.peer.ip}' AND dst = '{link.ip}'"))[0]
        assert (row["bytes"], row["packets"]) == (stored["b"], stored["p"])
        # Only our UDP went from the peer to the box (the collector counts every frame).
        assert row["packets"] >= count
        udp = influx_sums(traffic.influx, (
            f"SELECT SUM(packets) AS p, SUM(bytes) AS b FROM raw.flow WHERE src = "
            f"'{link.peer.ip}' AND service = 'udp/{PORT}' AND dir = 'ingress'"))[0]
        assert (udp["p"], udp["b"]) == (count, count * FRAME_BYTES)


def test_top_services_sum_what_was_sent(traffic: Traffic):
    top = traffic.get("/api/flows/top/", by="services", since="1h")
    row = next(r for r in top["rows"] if r["key"]["service"] == f"udp/{PORT}")
    total = sum(SENT.values())
    assert (row["packets"], row["bytes"]) == (total, total * FRAME_BYTES)
    only_b = traffic.get("/api/flows/top/", by="services", since="1h", box="box-b")
    row = next(r for r in only_b["rows"] if r["key"]["service"] == f"udp/{PORT}")
    assert row["packets"] == SENT["box-b"]
    boxes = traffic.get("/api/flows/top/", by="boxes", since="1h", limit=1)
    assert [r["key"]["box"] for r in boxes["rows"]] == ["box-a"]     # sent the most
    assert boxes["other"]["bytes"] > 0                                 # box-b, folded


def test_series_rates_add_up_to_what_influxdb_holds(traffic: Traffic):
    found = traffic.get("/api/series/traffic/", per="interface", since="15m")
    assert found["rp"] == "raw" and found["step"] == "10s"
    seconds = 10
    for name in SENT:
        link = traffic.links[name]
        stored = influx_sums(traffic.influx, (
            "SELECT SUM(bytes) AS b, SUM(packets) AS p FROM raw.iface WHERE time > now() - 1h "
            f"AND box = '{name}' AND iface = '{link.ifname}' AND dir = 'ingress'"))[0]
        series = next(s for s in found["series"] if s["key"] == {
            "box": name, "iface": link.ifname, "dir": "ingress"})
        assert round(sum(series["bits_per_s"]) * seconds / 8) == stored["b"]
        assert round(sum(series["packets_per_s"]) * seconds) == stored["p"]
        assert stored["p"] >= SENT[name]
    longer = traffic.get("/api/series/traffic/", since="2d")
    assert longer["rp"] == "raw" and longer["step"] == "10m"   # 2 d / 400 points
    week = traffic.get("/api/series/traffic/", since="7d")
    assert week["rp"] == "long" and week["step"] == "30m"


def test_talkers_beyond_raw_are_read_from_raw_or_refused(traffic: Traffic):
    week = traffic.get("/api/flows/top/", by="talkers", since="7d")
    assert week["rp"] == "raw" and week["rows"]      # long has no src/dst: raw answers
    services = traffic.get("/api/flows/top/", by="services", since="7d")
    assert services["rp"] == "long"                  # bounded tags: the dashboards' choice
    refused = traffic.portal.api(traffic.token).get(
        f"{traffic.portal.url}/api/flows/top/", params={"by": "talkers", "since": "60d"})
    assert refused.status_code == 400 and "30 days" in refused.text


def test_health_status_and_refresh_see_both_boxes(traffic: Traffic):
    boxes = {b["name"]: b for b in traffic.get("/api/boxes/")["results"]}
    for name in SENT:
        health = traffic.get(f"/api/boxes/{boxes[name]['id']}/health/", window="1h")
        assert health["interfaces_attached"] == 1 and health["last_seen_ms"]
        assert health["coverage"] is not None and health["coverage"] >= 0.99
        assert health["overflow_events"] == 0 and health["write_errors"] == 0
    status = traffic.get("/api/status/")
    assert status["influxdb"] == {"reachable": True, "error": None}
    assert {(b["site"], b["box"]) for b in status["boxes"]} == {("lab", n) for n in SENT}
    assert all(b["fresh"] for b in status["boxes"])
    assert all(not b["collector_version"] for b in traffic.get("/api/boxes/")["results"])
    out = traffic.portal.manage("refresh", "--window", "1h").stdout
    assert out.strip() == "2 boxes with data"
    for box in traffic.get("/api/boxes/")["results"]:
        assert box["last_seen"] and box["health"]["interfaces_attached"] == 1
        assert box["collector_version"] == COLLECTOR_VERSION   # from its self-metrics
    # The health loop's pass refreshes them too (as the monitor's evaluator does).
    again = traffic.portal.manage("health", "--once").stdout
    assert "2 boxes with data refreshed" in again, again
    names = {(i["box_name"], i["name"]) for i in traffic.get("/api/interfaces/")["results"]}
    assert names == {(n, traffic.links[n].ifname) for n in SENT}


def test_a_day_per_box_comes_computed_ahead_as_influxdb_holds_it(traffic: Traffic):
    """The health pass computes the series per box of the preset ranges (ahead_series.py);
    the API serves that pass and says when it was computed; its sums are InfluxDB's over
    the pass's own range, and an absolute range is computed at request time."""
    done = traffic.portal.manage("health", "--once").stdout
    assert "series per box of 24h, 7d, 30d computed in" in done, done
    served = traffic.get("/api/series/traffic/", per="box", since="24h", dir="ingress")
    assert served["computed_ahead"] and served["rp"] == "raw" and served["step"] == "5m"
    start_ns = int(datetime.fromisoformat(served["start"]).timestamp() * 10**9)
    end_ns = int(datetime.fromisoformat(served["end"]).timestamp() * 10**9)
    assert {tuple(s["key"].values()) for s in served["series"]} == {
        (name, "ingress") for name in SENT}
    for s in served["series"]:
        stored = influx_sums(traffic.influx, (
            f"SELECT SUM(bytes) AS b, SUM(packets) AS p FROM raw.iface WHERE time >= "
            f"{start_ns} AND time < {end_ns} AND box = '{s['key']['box']}' AND dir = "
            "'ingress'"))[0]
        assert round(sum(s["bits_per_s"]) * 300 / 8) == stored["b"]
        assert round(sum(s["packets_per_s"]) * 300) == stored["p"]
    week = traffic.get("/api/series/traffic/", per="box", since="7d")
    assert week["computed_ahead"] and week["rp"] == "long" and week["step"] == "30m"
    assert traffic.get("/api/series/traffic/", per="box", since="30d")["computed_ahead"]
    asked = traffic.get("/api/series/traffic/", per="box", start=served["start"])
    assert asked["computed_ahead"] is None and asked["series"]
    per_interface = traffic.get("/api/series/traffic/", per="interface", since="24h")
    assert per_interface["computed_ahead"] is None
