"""One live portal over a real influxd that two real collectors filled from netns
traffic, and one headless Debian chromium (Selenium + chromium-driver) for every test of
the module: the pages checked against what InfluxDB holds and what was sent."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.harness.bpf import bcc_unusable_reason
from tests.harness.influx import InfluxServer
from tests.harness.netns import HostLink, create_link, destroy_link
from tests.harness.portal import PASSWORD, PortalServer
from tests.integration.collector.collector_proc import (
    SteadyUdp,
    start,
    stop,
    wait_attached,
    write_config,
)
from tests.integration.portal.conftest import portal_available, start_influx

# Two boxes in two sites, packets a second from their peers; far's collector stops
# early, so far-1 is the silent one.
BOXES = {"lab-1": ("lab", 60.0), "far-1": ("far", 20.0)}
SENDING_S = 12   # more than one of the pages' 10 s steps: the charts draw a shape
SAMPLE_RATE = 10
GRAFANA = "http://127.0.0.1:3000"   # loopback: nothing in the repository links outside it
DRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Live:
    portal: PortalServer
    influx: InfluxServer
    links: dict[str, HostLink]
    sent: dict[str, int] = field(default_factory=dict)

    def influx_sum(self, what: str, where: str) -> int:
        rows = self.influx.rows(f"SELECT SUM({what}) AS v FROM {where}", db="sitevis")
        return int(rows[0]["v"]) if rows else 0


def _quiet(link: HostLink) -> None:
    """No IPv6 on the link (router solicitations, MLD): only the test's packets and ARP."""
    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{link.ifname}.disable_ipv6=1"],
                   check=True)
    link.peer.exec("sysctl", "-qw", f"net.ipv6.conf.{link.peer.ifname}.disable_ipv6=1")


def browser_unavailable() -> str | None:
    missing = [p for p in (DRIVER, CHROMIUM) if not Path(p).exists()]
    if missing:
        return (f"{', '.join(missing)} missing (Debian packages chromium, chromium-driver; "
                "playbooks/test_host.yml installs them)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    reason = portal_available() or browser_unavailable() or bcc_unusable_reason()
    if reason:
        pytest.skip(reason)
    influx = start_influx()
    portal = PortalServer(influx.url, grafana_url=GRAFANA)
    links: dict[str, HostLink] = {}
    procs: dict[str, subprocess.Popen] = {}
    try:
        portal.start()
        for box in BOXES:
            links[box] = create_link()
            _quiet(links[box])
        # Links first: a collector listing links while another is made can see pyroute2's
        # NetlinkDumpInterrupted and exit (reported in issue 16's note).
        for box, (site, _) in BOXES.items():
            tmp = tmp_path_factory.mktemp(box)
            config = write_config(tmp, links[box], influx.url, sample_rate=SAMPLE_RATE)
            data = yaml.safe_load(config.read_text())
            data.update(box=box, site=site)
            config.write_text(yaml.safe_dump(data))
            procs[box] = start(config)
        # The inventory while BPF compiles: sites, boxes, users of each kind.
        portal.user("admin", "admin")
        admin = portal.api(portal.token("admin", write=True))
        for box, (site, _) in BOXES.items():
            made = admin.post(f"{portal.url}/api/sites/", json={"name": site}).json()
            admin.post(f"{portal.url}/api/boxes/", json={"name": box, "site": made["id"]})
        portal.user("viewer", "viewer")
        portal.user("labviewer", "viewer", "lab")
        found = Live(portal, influx, links)
        for box, proc in procs.items():
            wait_attached(links[box].ifname, proc)
        senders = {box: SteadyUdp(links[box].peer, links[box].ip, rate)
                   for box, (_, rate) in BOXES.items()}
        time.sleep(SENDING_S)
        for box, sender in senders.items():
            found.sent[box] = sender.stop()
        time.sleep(2.5)                      # two intervals: every packet is written
        rc, err = stop(procs.pop("far-1"))   # far-1 falls silent; lab-1 keeps reporting
        assert rc == 0, err
        yield found
    finally:
        for proc in procs.values():
            stop(proc)
        for link in links.values():
            destroy_link(link)
        portal.cleanup()
        influx.cleanup()


@contextmanager
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless Debian chromium with its console log kept, quit and removed after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--hide-scrollbars", "--disable-gpu",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory) as driver:
        yield driver


@pytest.fixture(scope="module")
def bare_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The browser alone, for pages that need no collected traffic (no `live`)."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    with chromium(tmp_path_factory) as driver:
        yield driver


__all__ = ["PASSWORD", "Live"]
