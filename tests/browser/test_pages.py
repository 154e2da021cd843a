"""The portal's pages in a real browser (Debian's chromium), over data real collectors
wrote from netns traffic: they render without console errors, their numbers equal what
InfluxDB holds and what was sent, filters live in the URL, CSV equals the table, a viewer
sees no admin controls and a user of one site sees nothing of another."""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.browser.conftest import BOXES, GRAFANA, PASSWORD, Live
from tests.integration.collector.collector_proc import FRAME_BYTES, PORT

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "portal"
# SITEVIS_SCREENSHOTS=docs also refreshes the README's screenshots (docs/portal-*.png).
TO_DOCS = os.environ.get("SITEVIS_SCREENSHOTS") == "docs"


def by_css(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def console_errors(driver: Any) -> list[str]:
    """Browser console entries of level SEVERE since the last call (CSP refusals too)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def login(driver: Any, live: Live, user: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{live.portal.url}/login/")
    by_css(driver, "#id_username")[0].send_keys(user)
    by_css(driver, "#id_password")[0].send_keys(PASSWORD)
    by_css(driver, "main form button[type=submit]")[0].click()
    wait(driver, lambda: "/login/" not in driver.current_url, "login")
    assert console_errors(driver) == []


def wait(driver: Any, ready: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not ready in {timeout}s at {driver.current_url}")


def open_page(driver: Any, live: Live, path: str) -> None:
    """Load a page, wait until its parts loaded after it are in (htmx) and plotly drew
    every chart, and find no console error."""
    driver.get(f"{live.portal.url}{path}")
    wait(driver, lambda: loaded(driver), path)
    assert console_errors(driver) == [], path


def loaded(driver: Any) -> bool:
    return bool(driver.execute_script(
        "return document.readyState === 'complete' && "
        "!document.querySelector('[data-pending]') && "
        "!document.querySelector('div.chart:not([data-drawn])')"))


def values(driver: Any, css: str) -> list[str]:
    return [cell.get_attribute("data-value") for cell in by_css(driver, css)]


def screenshot(driver: Any, name: str) -> None:
    """The whole page at laptop width into artifacts/portal/ (and docs/ on request)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, min(height + 140, 2600))
    time.sleep(0.5)  # plotly's responsive relayout
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"portal-{name}.png"))
    driver.set_window_size(1440, 1000)
    if TO_DOCS:
        shutil.copy(SHOTS / f"portal-{name}.png", REPO / "docs" / f"portal-{name}.png")


def lab(live: Live) -> tuple[str, str]:
    link = live.links["lab-1"]
    return link.peer.ip, link.ip


def test_overview_numbers_equal_influxdb_and_what_was_sent(live: Live, browser: Any):
    login(browser, live, "admin")
    open_page(browser, live, "/?since=5m")
    row = {b: {c.get_attribute("data-col"): c.get_attribute("data-value")
               for c in by_css(browser, f"tr[data-box='{b}'] td[data-col]")} for b in BOXES}
    for box in BOXES:
        where = f"iface WHERE box = '{box}' AND dir = 'ingress' AND time > now() - 5m"
        assert int(row[box]["in_bytes"]) == live.influx_sum("bytes", where)
        assert float(row[box]["coverage"]) == pytest.approx(1.0, abs=0.02)
    # far-1 stopped: it alone stands out as silent.
    assert by_css(browser, "tr[data-box='far-1'].late")
    assert not by_css(browser, "tr[data-box='lab-1'].late")
    # What was sent, through the talkers and services tables (ingress; admin sees both).
    sent = {b: n * FRAME_BYTES for b, n in live.sent.items()}
    services = [r.text.split("\n")[0] for r in by_css(browser, "[data-table=top-services] tr")]
    assert any(line.startswith(f"udp/{PORT}") for line in services)
    cells = values(browser, "[data-table=top-services] tbody tr:first-child td[data-value]")
    assert int(cells[0]) == sum(sent.values())
    talkers = by_css(browser, "[data-table=top-talkers] tbody tr")
    peer, ip = lab(live)
    mine = next(r for r in talkers if r.text.startswith(f"{peer} → {ip}"))
    assert int(mine.find_elements("css selector", "td[data-value]")[0]
               .get_attribute("data-value")) == sent["lab-1"]
    links = [a.get_attribute("href") for a in by_css(browser, "a[data-grafana]")]
    assert links and all(href.startswith(GRAFANA) for href in links)
    screenshot(browser, "overview")
    # What auto-refresh does (htmx swaps the live part in): the same numbers, redrawn.
    browser.execute_script("document.querySelector('#live').dataset.old = '1';"
                           "htmx.ajax('GET', location.href, {target: '#live', "
                           "swap: 'outerHTML'})")
    wait(browser, lambda: not by_css(browser, "#live[data-old]") and loaded(browser),
         "refresh")
    assert console_errors(browser) == []
    assert by_css(browser, "tr[data-box='lab-1'] td[data-col=in_bytes]")[0].get_attribute(
        "data-value") == row["lab-1"]["in_bytes"]


def test_box_page_shows_its_interfaces_health_and_busiest_flow(live: Live, browser: Any):
    login(browser, live, "admin")
    open_page(browser, live, "/boxes/lab/lab-1/?since=5m")
    link = live.links["lab-1"]
    row = f"[data-table=interfaces] tr[data-iface='{link.ifname}'][data-dir=ingress]"
    got = {c.get_attribute("data-col"): c.get_attribute("data-value")
           for c in by_css(browser, f"{row} td[data-col]")}
    where = (f"iface WHERE box = 'lab-1' AND iface = '{link.ifname}' AND dir = 'ingress' "
             "AND time > now() - 5m")
    assert int(got["bytes"]) == live.influx_sum("bytes", where)
    assert int(got["packets"]) == live.influx_sum("packets", where)
    busiest = by_css(browser, "[data-table=busiest] tbody tr")[0]
    peer, ip = lab(live)
    assert busiest.text.startswith(f"{peer} → {ip}")
    assert busiest.find_elements("css selector", "td[data-value]")[0].get_attribute(
        "data-value") == str(live.sent["lab-1"] * FRAME_BYTES)
    health = {c.get_attribute("data-col"): c.get_attribute("data-value")
              for c in by_css(browser, "[data-table=health] td[data-col][data-value]")}
    assert health["ringbuf_lost"] == "0" and health["write_errors"] == "0"
    assert len(by_css(browser, "div.chart[data-drawn]")) >= 3
    screenshot(browser, "box")


def test_flow_explorer_filters_are_the_url_and_change_the_result(live: Live, browser: Any):
    from selenium.webdriver.support.ui import Select

    login(browser, live, "admin")
    open_page(browser, live, "/flows/?since=5m&box=lab-1")
    Select(by_css(browser, "#id_by")[0]).select_by_value("services")
    by_css(browser, "form.filters button[type=submit]")[0].click()
    wait(browser, lambda: "by=services" in browser.current_url, "group by services")
    open_page(browser, live, urlparse(browser.current_url).path + "?" +
              urlparse(browser.current_url).query)
    state = parse_qs(urlparse(browser.current_url).query)
    assert state == {"since": ["5m"], "box": ["lab-1"], "by": ["services"],
                     "dir": ["ingress"], "limit": ["10"], "unit": ["bits"]}
    first = values(browser, "[data-table=flows] tbody tr:first-child td")
    assert first[:3] == [f"udp/{PORT}", str(live.sent["lab-1"] * FRAME_BYTES),
                         str(live.sent["lab-1"])]
    # CSV of what is shown equals the table, cell for cell.
    href = by_css(browser, "a[data-csv]")[0].get_attribute("href")
    session = requests.Session()
    for cookie in browser.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"])
    answer = session.get(href, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    table = [[c.get_attribute("data-value") for c in r.find_elements("css selector", "td")]
             for r in by_css(browser, "[data-table=flows] tbody tr")]
    assert list(csv.reader(io.StringIO(answer.text)))[1:] == table
    screenshot(browser, "flows")
    # Another filter: the URL says so and nothing matches.
    box = by_css(browser, "#id_proto")[0]
    box.send_keys("tcp")
    by_css(browser, "form.filters button[type=submit]")[0].click()
    wait(browser, lambda: "proto=tcp" in browser.current_url, "proto filter")
    open_page(browser, live, urlparse(browser.current_url).path + "?" +
              urlparse(browser.current_url).query)
    assert "no flows match" in by_css(browser, "[data-table=flows]")[0].text
    # An address filter (src or dst) and an absolute range that holds the traffic.
    peer, ip = lab(live)
    start = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 600))
    open_page(browser, live, f"/flows/?start={start}&addr={ip}&dir=any&by=boxes")
    assert values(browser, "[data-table=flows] tbody tr td:first-child") == ["lab-1"]
    open_page(browser, live, f"/flows/?since=5m&addr={peer}&by=talkers")
    assert values(browser, "[data-table=flows] tbody tr td:nth-child(-n+2)") == [peer, ip]


def test_packets_page_lists_the_sampled_records(live: Live, browser: Any):
    login(browser, live, "admin")
    open_page(browser, live, "/packets/?since=5m&box=lab-1&proto=udp")
    rows = by_css(browser, "[data-table=packets] tbody tr")
    stored = live.influx.rows("SELECT COUNT(length) AS n FROM packet WHERE box = 'lab-1' "
                              "AND proto = 'udp' AND time > now() - 5m", db="sitevis")
    assert stored and len(rows) == min(100, stored[0]["n"]) > 0
    peer, ip = lab(live)
    assert all(f"{peer}:" in r.text and f"{ip}:{PORT}" in r.text for r in rows)


def test_viewer_sees_no_admin_controls(live: Live, browser: Any):
    login(browser, live, "admin")
    open_page(browser, live, "/boxes/lab/lab-1/")
    assert by_css(browser, "[data-needs=admin]")
    login(browser, live, "viewer")
    for path in ("/", "/boxes/lab/lab-1/", "/flows/", "/packets/"):
        open_page(browser, live, path)
        assert by_css(browser, "[data-needs]") == [], path
        assert "Administration" not in browser.find_element("css selector", "nav").text


def test_a_user_of_one_site_sees_nothing_of_another(live: Live, browser: Any):
    login(browser, live, "labviewer")
    open_page(browser, live, "/?since=5m")
    assert [r.get_attribute("data-box") for r in by_css(browser, "tr[data-box]")] == ["lab-1"]
    assert "far" not in browser.find_element("css selector", "main").text
    open_page(browser, live, "/flows/?by=boxes&dir=any")
    assert values(browser, "[data-table=flows] tbody tr td:first-child") == ["lab-1"]
    for path in ("/boxes/far/far-1/", "/flows/?site=far", "/packets/?site=far"):
        browser.get(f"{live.portal.url}{path}")
        assert "403" in browser.title or "Forbidden" in browser.page_source, path
        console_errors(browser)  # the 403 itself is logged as a failed resource


def test_pages_fit_a_phone_and_every_control_is_labelled(live: Live, browser: Any):
    login(browser, live, "admin")
    browser.set_window_size(390, 844)
    try:
        for path in ("/", "/boxes/lab/lab-1/", "/flows/", "/packets/"):
            open_page(browser, live, path)
            fits = browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1")
            wide = browser.execute_script(  # what sticks out, to say so when it fails
                "return [...document.querySelectorAll('main *:not(svg *)')].filter(e => "
                "e.getBoundingClientRect().right > window.innerWidth + 1 && "
                "!e.closest('.scroll')).map(e => e.tagName + '.' + e.className).slice(0, 5)")
            assert fits, (path, wide)
            unlabelled = browser.execute_script(
                "return [...document.querySelectorAll('main input:not([type=hidden]),"
                " main select')].filter(e => !e.labels.length).map(e => e.name)")
            assert unlabelled == [], path
    finally:
        browser.set_window_size(1440, 1000)


def test_keyboard_reaches_every_control_and_sign_out_works(live: Live, browser: Any):
    from selenium.webdriver.common.keys import Keys

    login(browser, live, "admin")
    open_page(browser, live, "/flows/")
    wanted = browser.execute_script(
        "return [...document.querySelectorAll('main input:not([type=hidden]), main select,"
        " main button')].map(e => e.id || e.textContent.trim())")
    reached = set()
    body = by_css(browser, "body")[0]
    body.send_keys(Keys.TAB)
    for _ in range(80):
        active = browser.switch_to.active_element
        reached.add(active.get_attribute("id") or active.text.strip())
        active.send_keys(Keys.TAB)
    assert set(wanted) <= reached
    open_page(browser, live, "/api/docs/")
    open_page(browser, live, "/")
    by_css(browser, ".who button[type=submit]")[0].click()
    wait(browser, lambda: "/login/" in browser.current_url, "sign out")
    browser.get(f"{live.portal.url}/flows/")
    assert "/login/" in browser.current_url
