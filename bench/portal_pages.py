"""The portal's site overview over a 100-box site (issue 16): page load, HTML + data.

An influxd (the portal tests' schema: raw, long, selector) takes the last hour of 100
boxes from bench/sitegen.py (the collector's own code; profile "lab" by default) at the
collector's real 10-s interval, plus one sitevis_collector health point per box and
interval. A portal (gunicorn, as `sitevis portal serve` runs it) then serves the overview
(last hour) to a signed-in admin, its top lists computed ahead by one pass of the health
loop (`sitevis portal health --once`, timed), then kept fresh by the loop itself
(`sitevis portal health --loop`, running through the whole measurement, as on the
monitor):

- cold: the first load after the portal started (fresh workers, nothing cached): the
  HTML (boxes, health, traffic), then the three top lists it loads with htmx, side by
  side as a browser fetches them; HTML alone and HTML + data;
- warm: the same repeated (median and spread);
- refresh: the htmx partial the auto-refresh fetches (HX-Request), warm;
- at request time: the same hour as an absolute range, whose top lists are computed when
  asked (what a user limited to some sites gets), warm, side by side with the above;
- of which: each query-layer call of the overview, timed in-process;
- assets: every static file the page names (plotly.min.js included), gzip, first fetch;
- browser (when Debian's chromium and chromium-driver are here): navigation to the
  load event and to the last chart drawn, first visit vs reload.

    .venv/bin/python -m bench.portal_pages            # 100 boxes x 1 h: minutes to fill
    .venv/bin/python -m bench.portal_pages --quick    # 5 boxes, 10 minutes of data
"""

from __future__ import annotations

import argparse
import html
import importlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import BenchError, Table, median, spread, verdict
from bench.sitegen import REAL_INTERVAL, Batch, fill, generate
from tests.harness.influx import InfluxServer, backfill_rollups
from tests.harness.portal import PortalServer

# The portal tests' influxd with the role's schema and selector; imported at run time so
# the lint stage's mypy (which checks bench/) does not type-check the test tree.
start_influx = importlib.import_module("tests.integration.portal.conftest").start_influx

TARGET_S = 1.5
SITE = "bench"
HEALTH = ("sitevis_collector,site={site},box={box} flows_exported={rows}i,interfaces_attached=1i,"
          "overflow_events=0i,ringbuf_lost=0i,write_errors=0i,spool_bytes=0i,spool_files=0i,"
          "queue_bytes=0i,filters_restored=0i,samples_rate_limited=0i,unaccounted=0i {t}")
ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')
PANEL = re.compile(r'hx-get="([^"]+)" hx-trigger="load"')


def load(influx: InfluxServer, boxes: int, minutes: float, profile: str, distinct: int) -> int:
    """The last `minutes` of `boxes` boxes at the real interval; returns the points written.

    The generator makes `distinct` intervals per box (it costs about 7 ms of CPU a batch,
    too much for an hour of 100 boxes on a shared 2-core machine); they are then repeated,
    shifted in time, to fill the range. A profile of fixed peers ("lab") is steady, so the
    repeat holds what an hour of it holds: the same series, the same points per interval."""
    step = int(REAL_INTERVAL * 1e9)
    intervals = int(minutes * 60 / REAL_INTERVAL)
    start_ns = time.time_ns() - intervals * step
    made = list(generate(SITE, boxes, profile, start_ns, min(distinct, intervals) *
                         REAL_INTERVAL / 3600, interval=REAL_INTERVAL))
    seen: list[tuple[str, int]] = []

    def tiled() -> Iterator[Batch]:
        for k in range(0, intervals, distinct):
            for batch in made:
                end = batch.end_ns + k * step
                if end > start_ns + intervals * step:
                    continue
                seen.append((batch.box, end))
                # Every line of a batch ends with its interval's end (the collector's rule).
                yield Batch(batch.box, end, batch.raw.replace(
                    f" {batch.end_ns}\n".encode(), f" {end}\n".encode()), batch.points,
                    b"", 0)

    stats = fill(influx.url, "sitevis", tiled(), long_rp=None)
    refused = sum(s.refused for s in stats.values())
    if refused:
        raise BenchError(f"influxd refused {refused} points: {stats['raw'].errors[:2]}")
    # The role's flow rollups over what was just written with past times (their queries
    # run each minute from now on, but only over the last minutes).
    backfill_rollups(influx, "sitevis", start_ns // 10**9, time.time_ns() // 10**9)
    health = "\n".join(HEALTH.format(site=SITE, box=box, rows=1, t=end) for box, end in seen)
    answer = requests.post(f"{influx.url}/write", params={"db": "sitevis", "rp": "raw"},
                           data=health.encode(), timeout=300)
    if answer.status_code != 204:
        raise BenchError(f"health points refused: {answer.status_code} {answer.text[:200]}")
    return sum(s.points for s in stats.values()) + len(seen)


def page_load(session: requests.Session, url: str) -> tuple[float, float, int]:
    """The overview as a browser loads its data: the HTML (boxes, health, traffic), then
    the top lists it names (hx-trigger="load"), side by side. Seconds for the HTML and for
    all of it, and the bytes."""
    start = time.perf_counter()
    answer = session.get(url, timeout=300)
    html_s = time.perf_counter() - start
    if answer.status_code != 200:
        raise BenchError(f"{url} answered {answer.status_code}")
    parts = [html.unescape(u) for u in PANEL.findall(answer.text)]
    if not parts:
        raise BenchError("the overview names no top lists to load")
    base = url.split("/", 3)[:3]
    with ThreadPoolExecutor(len(parts)) as pool:
        sizes = list(pool.map(lambda part: timed(session, "/".join(base) + part,
                                                 **{"HX-Request": "true"})[1], parts))
    return html_s, time.perf_counter() - start, len(answer.content) + sum(sizes)


def timed(session: requests.Session, url: str, **headers: str) -> tuple[float, int]:
    start = time.perf_counter()
    answer = session.get(url, headers=headers, timeout=120)
    elapsed = time.perf_counter() - start
    if answer.status_code != 200:
        raise BenchError(f"{url} answered {answer.status_code}")
    return elapsed, len(answer.content)


def breakdown(portal: PortalServer, reps: int) -> list[tuple[str, list[float]]]:
    """Each query-layer call the overview makes (sitevis/portal/traffic), timed in this
    process against the same influxd: where the page's time goes."""
    import os

    import django

    os.environ["SITEVIS_PORTAL_CONFIG"] = str(portal.config)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sitevis.portal.settings")
    django.setup()
    from sitevis import rollup
    from sitevis.portal.traffic import health, series, sitehealth, source, timerange, top
    from sitevis.query import Where

    db = source.influx()
    rng = timerange.resolve("1h", None, None, None)

    def busiest() -> list[str]:
        weight: dict[str, int] = {}
        for (box, _), (nbytes, _) in series.totals(db, rng, Where(), "box").items():
            weight[box] = weight.get(box, 0) + nbytes
        return sorted(weight, key=lambda b: -weight[b])[:8]
    calls: dict[str, Callable[[], object]] = {
        "health.freshness (last seen, every box)": lambda: health.freshness(db, Where()),
        "sitehealth.per_box (3 queries)": lambda: sitehealth.per_box(db, Where, rng),
        "series.totals per box, no time buckets (the boxes table)":
            lambda: series.totals(db, rng, Where(), "box"),
        "series.traffic of the 8 busiest boxes (the chart)":
            lambda: series.traffic(db, rng, Where().tag_in("box", busiest()), "box"),
        "series.traffic of the whole site (the chart's other boxes)":
            lambda: series.traffic(db, rng, Where(), "site"),
        "the former page's series.traffic of every box in 10-s buckets":
            lambda: series.traffic(db, rng, Where(), "box"),
    }

    def top_by(by: str) -> Callable[[], object]:
        return lambda: top.top(db, by, rng, Where().tag("dir", "ingress"), 10)

    def raw_only(by: str) -> Callable[[], object]:
        return lambda: rollup.totals(db, source.policy(db, rng).name,
                                     Where().tag("dir", "ingress"), ("bytes", "packets"),
                                     top.GROUPINGS[by], rng.start_ns, rng.end_ns, through=[])

    for by in ("talkers", "services", "protocols"):
        calls[f"top.top {by} (flow, ingress; through the rollups)"] = top_by(by)
        calls[f"top.top {by}: the same sums from raw points only"] = raw_only(by)
    out = []
    for name, call in calls.items():
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out.append((name, times))
    return out


def browser_times(url: str, session: requests.Session, reps: int) -> dict[str, list[float]]:
    """Navigation to load and to the last chart drawn: a first visit, then reloads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1440,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    out: dict[str, list[float]] = {"first": [], "reload": []}
    try:
        driver.get(f"{url}/login/")
        for cookie in session.cookies:
            driver.add_cookie({"name": cookie.name, "value": cookie.value or ""})
        for i in range(reps + 1):
            start = time.perf_counter()
            driver.get(f"{url}/")
            while driver.execute_script(
                    "return document.querySelectorAll('div.chart:not([data-drawn])').length"):
                time.sleep(0.02)
            out["first" if i == 0 else "reload"].append(time.perf_counter() - start)
    finally:
        driver.quit()
    return out


def measure(boxes: int, minutes: float, profile: str, reps: int, distinct: int) -> Table:
    influx = start_influx(rollups=True)
    portal = PortalServer(influx.url)
    loop: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        points = load(influx, boxes, minutes, profile, distinct)
        fill_s = time.perf_counter() - t0
        portal.start()
        portal.user("admin", "admin")
        t0 = time.perf_counter()
        portal.manage("health", "--once")
        ahead_s = time.perf_counter() - t0
        loop = subprocess.Popen([sys.executable, "-m", "sitevis.portal", "health", "--loop"],
                                env=portal.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        session = portal.login("admin")
        url = f"{portal.url}/"
        cold_html, cold, size = page_load(session, url)
        loads = [page_load(session, url) for _ in range(reps)]
        warm_html, warm = [h for h, _, _ in loads], [t for _, t, _ in loads]
        partial = [timed(session, url, **{"HX-Request": "true"})[0] for _ in range(reps)]
        hour_ago = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 3600))
        asked = [page_load(session, f"{url}?start={hour_ago}")[1]
                 for _ in range(max(1, reps // 3))]
        page = session.get(url, timeout=300).text
        found = re.search(r'data-table="boxes"', page) and page.count("<tr data-box=")
        if found != boxes:
            raise BenchError(f"the overview lists {found} boxes, not {boxes}")
        fresh = requests.Session()
        assets = [timed(fresh, f"{portal.url}{path}", **{"Accept-Encoding": "gzip"})
                  for path in sorted(set(ASSET.findall(page)))]
        table = Table(f"Portal overview page, {boxes} boxes x {minutes:g} min of '{profile}' "
                      f"at {REAL_INTERVAL:g} s ({points} points, {distinct} distinct intervals "
                      f"repeated; filled in {fill_s:.0f} s)",
                      ["what", "seconds", "spread", "bytes", "target", "verdict"])
        table.add("cold (first request): HTML", cold_html, "", "", "", "")
        table.add("cold: HTML + data (top lists side by side)", cold, "", size,
                  f"<= {TARGET_S}", verdict(cold <= TARGET_S))
        table.add(f"warm (median of {reps}): HTML", median(warm_html),
                  spread(warm_html, "{:.3f}"), "", "", "")
        table.add(f"warm (median of {reps}): HTML + data", median(warm),
                  spread(warm, "{:.3f}"), size, f"<= {TARGET_S}",
                  verdict(median(warm) <= TARGET_S))
        table.add(f"auto-refresh partial without top lists, warm (median of {reps})",
                  median(partial), spread(partial, "{:.3f}"), "", "", "")
        table.add("top lists computed ahead: one health pass (`health --once`)", ahead_s,
                  "", "", "", "")
        table.add(f"the same hour as an absolute range, top lists at request time "
                  f"(median of {len(asked)})", median(asked), spread(asked, "{:.3f}"), "",
                  "", "")
        table.add("  at request time / computed ahead (ratio)", median(asked) / median(warm),
                  "", "", "", "")
        table.add(f"static assets, first fetch ({len(assets)} files, gzip; bytes decoded)",
                  sum(s for s, _ in assets), "", sum(n for _, n in assets), "", "")
        table.checks = {"cold": cold <= TARGET_S, "warm": median(warm) <= TARGET_S}
        spent_by = dict(breakdown(portal, max(1, reps // 3)))
        for name, spent in spent_by.items():
            table.add(f"  of which {name}", median(spent), spread(spent, "{:.3f}"), "", "",
                      "")
        for by in ("talkers", "services", "protocols"):
            raw = median(spent_by[f"top.top {by}: the same sums from raw points only"])
            rolled = median(spent_by[f"top.top {by} (flow, ingress; through the rollups)"])
            table.add(f"  top {by}: raw points only / through the rollups (ratio)",
                      raw / rolled, "", "", "", "")
        if Path("/usr/bin/chromedriver").exists():
            times = browser_times(portal.url, session, max(2, reps // 2))
            table.add("browser: first visit to last chart drawn", times["first"][0], "", "",
                      "", "")
            table.add("browser: reload to last chart drawn (median)", median(times["reload"]),
                      spread(times["reload"], "{:.3f}"), "", "", "")
        table.notes.append("cold/warm: requests from this host over loopback, the portal's "
                           "2 gunicorn workers; top lists are fetched as the page asks (htmx)")
        table.notes.append("cold/warm: the overview's default (the last hour), its top lists "
                           "computed ahead by the health pass above (traffic/ahead.py); the "
                           "absolute range computes them per request")
        table.data = {"cold": cold, "warm": warm, "partial": partial}
        return table
    finally:
        if loop is not None:
            loop.terminate()
            loop.wait(timeout=60)
        portal.cleanup()
        influx.cleanup()


def _exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)   # so the servers are stopped and removed


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--profile", default="lab")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--distinct", type=int, default=30,
                        help="intervals the generator makes per box, repeated to fill")
    parser.add_argument("--quick", action="store_true", help="5 boxes, 10 minutes, 3 reps")
    args = parser.parse_args(argv)
    if args.quick:
        args.boxes, args.minutes, args.reps = 5, 10.0, 3
    try:
        table = measure(args.boxes, args.minutes, args.profile, args.reps, args.distinct)
    except BenchError as err:
        print(f"bench.portal_pages: {err}", file=sys.stderr)
        return 1
    print(table.render())
    return 0 if table.passed else 1


if __name__ == "__main__":
    sys.exit(main())
