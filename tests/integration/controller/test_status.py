"""`sitevis status` and `sitevis top` read what real collectors wrote to a real influxd."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.bpf import bcc_unusable_reason
from tests.harness.influx import InfluxServer, find_influxd
from tests.harness.netns import HostLink, create_link, destroy_link
from tests.integration.collector.collector_proc import (
    FRAME_BYTES,
    PORT,
    collect_boxes,
)
from tests.integration.controller.sitevis_cli import sitevis

SENT = {"box-a": 600, "box-b": 200}


@dataclass
class Site:
    influx: InfluxServer
    links: dict[str, HostLink]
    inventory: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two boxes' collectors (box-b stops early) over real veths into one influxd, and an
    inventory whose recorded monitor.json points at it."""
    reason = bcc_unusable_reason()
    if reason or find_influxd() is None:
        pytest.skip(reason or "influxd not installed")
    influx = InfluxServer(find_influxd() or "")
    links: dict[str, HostLink] = {}
    try:
        influx.start()
        influx.query("CREATE DATABASE sitevis")
        for name in SENT:
            links[name] = create_link()
        collect_boxes(links, SENT, influx.url, tmp_path_factory.mktemp)
        inventory = tmp_path_factory.mktemp("inventory")
        (inventory / "hosts.yml").write_text("all: {}\n")
        (inventory / ".secrets").mkdir()
        (inventory / ".secrets" / "monitor.json").write_text(json.dumps(
            {"url": influx.url, "database": "sitevis", "site": "lab",
             "username": None, "password": None}))
        yield Site(influx, links, inventory / "hosts.yml")
    finally:
        for link in links.values():
            destroy_link(link)
        influx.cleanup()


def test_status_lists_every_box_with_full_coverage(site: Site):
    proc = sitevis("status", "-i", str(site.inventory), "--stale-after", "600")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stdout.splitlines()
            if line.count("│") > 3 and "box-" in line}
    assert set(rows) == set(SENT)
    for line in rows.values():
        cells = [c.strip() for c in line.split("│")]
        assert cells[3] == "1"                   # one interface attached
        assert cells[4].endswith("%")            # coverage is known
        assert float(cells[4].rstrip(" %")) >= 99.0


def test_status_names_silent_boxes_and_exits_3(site: Site):
    time.sleep(2)
    proc = sitevis("status", "-i", str(site.inventory), "--stale-after", "1")
    assert proc.returncode == 3
    assert "silent: box-a, box-b" in proc.stdout


def test_top_talkers_are_the_udp_flows_sent(site: Site):
    proc = sitevis("top", "-i", str(site.inventory), "--since", "1h", "--limit", "5")
    assert proc.returncode == 0, proc.stderr
    for name, count in SENT.items():
        link = site.links[name]
        line = next(line for line in proc.stdout.splitlines() if link.peer.ip in line)
        assert link.ip in line and f" {count} " in f"{line} "   # source, destination
    services = sitevis("top", "-i", str(site.inventory), "--by", "services", "--url",
                       site.influx.url)
    line = next(line for line in services.stdout.splitlines() if f"udp/{PORT}" in line)
    total = sum(SENT.values())
    assert f" {total} " in f"{line} "
    assert f"{total * FRAME_BYTES / 1000:.1f} kB" in line


def test_status_without_data_or_server_is_one_line(site: Site, tmp_path: Path):
    empty = sitevis("status", "--url", site.influx.url, "--database", "nothing_here")
    assert empty.returncode == 1
    assert empty.stderr.count("\n") == 1 and "Traceback" not in empty.stderr
    down = sitevis("status", "--url", "http://127.0.0.1:9")
    assert down.returncode == 1
    assert down.stderr.strip() == ("sitevis status: cannot reach InfluxDB at "
                                   "http://127.0.0.1:9: [Errno 111] Connection refused")
    (tmp_path / "hosts.yml").write_text("all: {}\n")
    unknown = sitevis("top", "-i", str(tmp_path / "hosts.yml"))
    assert unknown.returncode == 1 and "run `sitevis rollout` first" in unknown.stderr
    typo = sitevis("top", "-i", str(tmp_path / "hots.yml"))
    assert typo.returncode == 2
    assert typo.stderr == (f"sitevis top: inventory {tmp_path / 'hots.yml'}: "
                           "no such file or directory\n")
