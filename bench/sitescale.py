"""Site-scale load: 100 simulated boxes against the influxdb role's own InfluxDB, old
schema vs new (issue 14, "A store that holds a real site"; bench/README.md,
"Site-scale load").

For each traffic profile (bench/sitegen.py: lab, internet, scan) and each schema (old:
the collector without a series budget; new: its defaults) a fresh influxd with the
role's rendered influxdb.conf and the role's schema (database, retention policies,
continuous queries, users, selector: tasks/schema.yml run by ansible-playbook) takes one
simulated day of every box, written by the collector's own code (sitegen), then:
series (exact), influxd RSS, refused points, disk, and the p95 of the dashboards' main
queries. One table per profile, old | new side by side.

    .venv/bin/python -m bench.sitescale            # full: over an hour
    .venv/bin/python -m bench.sitescale --quick    # 4 boxes, 2 simulated hours
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from sitevis_collector.export.lineproto import Point, encode_line

from bench.common import REPO, BenchError, Table, verdict
from bench.sitegen import (
    IFACE,
    LONG_BUCKET_NS,
    PROFILES,
    REAL_INTERVAL,
    Batcher,
    Box,
    Writer,
    WriteStats,
    long_lines,
)

GIB = 1 << 30
TARGET_RSS = 8 * GIB
TARGET_TOP24_S = 1.0
# The rules run every collector interval (10 s) and the boxes' refresh every
# overview_refresh_seconds (30 s): a round must fit in its period.
HEALTH_TARGET_S = {"evaluation": 10.0, "boxes refresh": 30.0}
SITE = "bench"
DB = "sitevis"
ROLE = REPO / "roles" / "influxdb"
RAW_DAYS, LONG_DAYS = 30, 400              # the role's default retention
# Placeholders the rendered config carries until a server takes its own ports and dir.
ROOT_TOKEN, HTTP_TOKEN, RPC_TOKEN = "/SITESCALE_ROOT", "127.0.0.1:58086", "127.0.0.1:58088"

RENDER_PLAYBOOK = """
- name: The influxdb role's influxdb.conf, rendered as the role renders it
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
  tasks:
    - name: Render influxdb.conf.j2
      ansible.builtin.template:
        src: {role}/templates/influxdb.conf.j2
        dest: "{{{{ out }}}}"
        mode: "0644"
"""


# --- the role's InfluxDB --------------------------------------------------------------------

def ansible_playbook() -> str:
    found = Path(sys.executable).parent / "ansible-playbook"
    if found.is_file():
        return str(found)
    which = shutil.which("ansible-playbook")
    if not which:
        raise BenchError("ansible-playbook not found (pip install -e . makes it)")
    return which


def render_config(tmp: Path, boxes: int) -> str:
    """roles/influxdb/templates/influxdb.conf.j2 through ansible-playbook with the role's
    defaults and vars; storage dir and ports are placeholders filled per server."""
    playbook = tmp / "render.yml"
    playbook.write_text(RENDER_PLAYBOOK.format(role=ROLE))
    out = tmp / "influxdb.conf"
    extra = {"out": str(out), "influxdb_storage_dir": ROOT_TOKEN,
             "influxdb_bind_address": HTTP_TOKEN, "influxdb_rpc_bind_address": RPC_TOKEN,
             "influxdb_site_boxes": boxes,
             "ansible_python_interpreter": "/usr/bin/python3"}
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run([ansible_playbook(), "-i", "localhost,", "-e", json.dumps(extra),
                          str(playbook)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    if run.returncode != 0:
        raise BenchError(f"rendering influxdb.conf failed: {run.stdout[-800:]}{run.stderr[-400:]}")
    return out.read_text()


def role_server(conf: str, binary: str):
    """An InfluxServer (tests/harness) running the role's rendered configuration."""
    from tests.harness.influx import InfluxServer

    class RoleInflux(InfluxServer):
        def _write_config(self) -> None:
            self.config.write_text(
                conf.replace(ROOT_TOKEN, str(self.root))
                .replace(HTTP_TOKEN, f"127.0.0.1:{self.http_port}")
                .replace(RPC_TOKEN, f"127.0.0.1:{self.rpc_port}"))

    return RoleInflux(binary, auth=True)


def seed_schema(conf: str, binary: str, tmp: Path, boxes: int) -> Path:
    """A data directory holding what the role makes: the admin user (tasks/admin.yml's
    one statement), then tasks/preflight, passwords and schema by ansible-playbook."""
    from tests.harness.influx_role import ADMIN, apply_schema

    server = role_server(conf, binary)
    try:
        server.start()
        server.query(f"CREATE USER {ADMIN[0]} WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES")
        run = apply_schema(server, tmp / "schema", influxdb_site_boxes=boxes)
        if run.returncode != 0:
            raise BenchError(f"the role's schema tasks failed: {run.stdout[-1500:]}")
        server.stop()
        seed = tmp / "seed"
        seed.mkdir()
        for sub in ("meta", "data", "wal"):
            if (server.root / sub).exists():
                shutil.copytree(server.root / sub, seed / sub)
        return seed
    finally:
        server.cleanup()


# --- measuring influxd ---------------------------------------------------------------------

def vm(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def du(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def cardinality(server, exact: bool, timeout: float = 120.0) -> int:
    """Series of the database: SHOW SERIES [EXACT] CARDINALITY (every measurement)."""
    from tests.harness.influx_role import ADMIN

    q = f"SHOW SERIES {'EXACT ' if exact else ''}CARDINALITY ON {DB}"
    total = 0
    for result in _get(server, q, auth=ADMIN, timeout=timeout, db=None).get("results", []):
        for series in result.get("series", []):
            total += sum(int(v[0]) for v in series["values"])
    return total


def _series_now(server) -> int:
    try:
        return cardinality(server, exact=True, timeout=60)
    except (BenchError, OSError):
        return cardinality(server, exact=False)


@dataclass
class Query:
    name: str
    template: str
    span_s: int
    times: list[float] = field(default_factory=list)
    rp: str = ""
    rows: int = 0

    @property
    def p95(self) -> float:
        return p95(self.times)


def p95(times: list[float]) -> float:
    if not times:
        return math.nan
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def grafana_interval(span_s: int, min_s: int) -> int:
    """Grafana's $__interval for a ~1000-pixel panel: range / 1000 rounded as Grafana's
    roundInterval does, never below the panel's min interval ($rp_interval)."""
    raw = span_s / 1000
    steps = [(15, 10), (35, 20), (75, 30), (210, 60), (450, 300), (750, 600),
             (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200)]
    chosen = next((step for bound, step in steps if raw <= bound), 3 * 3600)
    return max(chosen, min_s)


def dashboard_queries() -> list[Query]:
    from sitevis import overview

    return [Query("top-N talkers, 1 h", overview.TOP_TALKERS, 3600),
            Query("top-N talkers, 24 h", overview.TOP_TALKERS, 86400),
            Query("traffic per box, 24 h", overview.BOX_BPS, 86400),
            Query("traffic per box, 7 d", overview.BOX_BPS, 7 * 86400)]


def code_queries(server, end_ms: int, reps: int, cap_s: float) -> list[Query]:
    """Top talkers over 24 h as `sitevis top` and the portal compute them
    (sitevis.rollup: whole rollup buckets and raw edges; raw alone where there are no
    rollups), as the grafana user. Each rollup holds a point per series and bucket
    whatever the raw density, so its time is a real site's."""
    from sitevis import rollup
    from sitevis.influx import Influx
    from sitevis.query import Where
    from tests.harness.influx_role import GRAFANA

    db = Influx(server.url, DB, *GRAFANA, timeout=600)
    rollup.clear_cache()
    q = Query("top-N talkers, 24 h, sitevis.rollup (sitevis top --now; the portal's pass)",
              "", 86400, rp="raw")
    end_ns = end_ms * 10**6
    spent = 0.0
    while len(q.times) < reps and (spent < cap_s or not q.times):
        t0 = time.monotonic()
        sums = rollup.totals(db, "raw", Where().tag("dir", "ingress"), ("bytes", "packets"),
                             ("src", "dst"), end_ns - 86400 * 10**9, end_ns, end_ns)
        q.times.append(time.monotonic() - t0)
        spent += q.times[-1]
        q.rows = len(sums)
    used = [t.measurement for t in rollup.tiers(db, "raw")]
    q.rp = "+".join(["raw", *used])
    return [q]


API_PROFILES = ("internet",)     # issue 15: the API over the internet-facing site
TARGET_API_S = {"/api/flows/top/ 24h": 0.5, "/api/series/traffic/ 7d": 1.0}


def portal_p95(server, reps: int, boxes: int, api: bool) -> list[dict]:
    """The portal's passes, the 24-h top lists read from them (the overview dashboard's
    panel, `sitevis top`) and, with `api`, its API over this InfluxDB (a portal as
    `sitevis portal serve` runs it, reading as the grafana user, its health loop running
    beside it as on the monitor):
    each call of sitevis/portal/traffic/workload.py `reps` times, p95 per call. A top list
    over a preset range is served from the loop's pass (sitevis/portal/traffic/ahead.py);
    the same range asked as an absolute one is computed at request time, timed beside it.
    The first entry is the pass itself (`health --once`: every preset's lists)."""
    from sitevis import toplist
    from sitevis.portal.traffic.ahead import PRESETS
    from sitevis.portal.traffic.workload import standard_queries
    from tests.harness.influx_role import GRAFANA, PASSWORDS
    from tests.harness.portal import PortalServer

    secrets_dir = Path(tempfile.mkdtemp(prefix="sitevis-bench-"))
    password = secrets_dir / "influx-password"
    password.write_text(GRAFANA[1])
    writer = secrets_dir / "influx-writer-password"
    writer.write_text(PASSWORDS["influxdb_portal_password"])
    portal = PortalServer(server.url, influxdb={
        "url": server.url, "database": DB, "username": GRAFANA[0],
        "password_file": str(password), "writer_username": "portal",
        "writer_password_file": str(writer)})
    out = []
    loop = None
    try:
        portal.start()
        portal.user("admin", "admin")
        session = portal.api(portal.token("admin"))
        # The site's boxes, as the portal role imports them from the inventory: the
        # health rules and the boxes' refresh run over each of them.
        inventory = secrets_dir / "boxes.json"
        inventory.write_text(json.dumps([{"name": _box(i), "site": SITE, "groups": ["boxes"]}
                                         for i in range(boxes)]))
        portal.manage("import", "--json", str(inventory))
        t0 = time.monotonic()
        once = portal.manage("health", "--once").stdout
        out.append({"path": "health --once", "params": {}, "times": [time.monotonic() - t0],
                    "p95_s": time.monotonic() - t0, "ahead": False})
        out += health_parts(once, boxes)
        loop = subprocess.Popen([sys.executable, "-m", "sitevis.portal", "health", "--loop"],
                                env=portal.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        calls = []
        for path, params in standard_queries(SITE, _box(0)) if api else ():
            calls.append((path, params, reps, ""))
            if path == "/api/flows/top/" and params.get("since") in PRESETS:
                start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
                    time.time() - _seconds(params["since"])))
                asked = {k: v for k, v in params.items() if k != "since"}
                calls.append((path, {**asked, "start": start}, max(1, reps // 3),
                              params["since"]))
        # The dashboard's 24-h top talkers panel: the pass's points (sitevis/toplist.py).
        panel = toplist.panel_query("talkers", "24h").replace("$site", SITE)
        times = []
        for _ in range(reps):
            t0 = time.monotonic()
            rows = _get(server, panel)
            times.append(time.monotonic() - t0)
        if not any(r.get("series") for r in rows.get("results", [])):
            raise BenchError("the portal wrote no top list for the dashboards (toplist)")
        out.append({"path": "dashboard", "params": {"since": "24h", "by": "talkers"},
                    "times": times, "ahead": True, "p95_s": p95(times)})
        out.append(cli_top(server, reps))
        for path, params, n, preset in calls:
            times, ahead = [], False
            for _ in range(n):
                t0 = time.monotonic()
                answer = session.get(f"{portal.url}{path}", params=params, timeout=600)
                times.append(time.monotonic() - t0)
                if answer.status_code != 200:
                    raise BenchError(f"{path} {params} answered {answer.status_code}: "
                                     f"{answer.text[:200]}")
                ahead = bool(answer.json().get("computed_ahead"))
            out.append({"path": path, "params": params, "times": times, "ahead": ahead,
                        "preset": preset, "p95_s": p95(times)})
    finally:
        if loop is not None:
            loop.terminate()
            loop.wait(30)
        portal.cleanup()
        shutil.rmtree(secrets_dir, ignore_errors=True)
    return out


# `health --once` says what each part took (sitevis/portal/health/management/commands).
HEALTH_PARTS = {"evaluation": r"health: (\d+) boxes, .* \(evaluated in ([\d.]+) s\)",
                "boxes refresh": r"health: (\d+) boxes with data refreshed in ([\d.]+) s"}


def health_parts(output: str, boxes: int) -> list[dict]:
    """The rules' evaluation (every collector interval, 10 s) and the boxes' refresh (its
    own thread, every 30 s) over `boxes` boxes, as `health --once` timed them."""
    out = []
    for part, pattern in HEALTH_PARTS.items():
        found = re.search(pattern, output)
        if not found:
            raise BenchError(f"health --once did not say its {part} time: {output[-300:]}")
        if int(found[1]) != boxes:
            raise BenchError(f"health --once: {part} over {found[1]} boxes, not {boxes}")
        seconds = float(found[2])
        out.append({"path": f"health {part}", "params": {"boxes": boxes},
                    "times": [seconds], "p95_s": seconds, "ahead": False})
    return out


# A talker's address in a series key (line protocol: an escaped value ends at , or end).
TALKER_TAG = re.compile(r"(,(?:src|dst)=)([0-9A-Fa-f.:]+)(?=,|$)")
FILL_BATCH = 20_000
FILL_CEILING = 12 * GIB     # the fill stops past this (the target is 8 GiB)


def fill_month(server, pid: int, days: int, end_s: int) -> dict:
    """Every series key the simulated day left in the database, once more in each of the
    `days` - 1 days before it, into the raw policy (each day its own shard, as a month of
    writing leaves them), with every talker address made new per day: the worst case
    (the budget admits a new set of talkers each day; the recurring peers would keep
    theirs). One point per key (field `fill`, no query sums it). Then the day's heaviest
    query once (the 24-h talkers through the rollups), and influxd's RSS: what a month of
    this site costs, measured rather than projected."""
    from tests.harness.influx_role import ADMIN

    keys = [row[0] for result in _get(server, f"SHOW SERIES ON {DB}", auth=ADMIN,
                                      db=None).get("results", [])
            for series in result.get("series", []) for row in series["values"]]
    t0 = time.monotonic()
    written = 0

    def post(lines: list[str]) -> int:
        status = server.write(DB, "\n".join(lines), precision="s", auth=ADMIN, rp="raw")
        if status != 204:
            raise BenchError(f"the month's fill was refused ({status}) after {written} points")
        return len(lines)

    batch: list[str] = []
    filled_days = 1
    for day in range(1, days):
        at, renamed = end_s - day * 86400, rf"\1\2~{day}"
        for key in keys:
            batch.append(f"{TALKER_TAG.sub(renamed, key)} fill=1i {at}")
            if len(batch) >= FILL_BATCH:
                written += post(batch)
                batch = []
        if batch:
            written += post(batch)
            batch = []
        filled_days += 1
        # This machine's other work must survive a monitor that does not fit.
        if vm(pid)["VmRSS"] > FILL_CEILING:
            break
    fill_s = time.monotonic() - t0
    filled = vm(pid)
    # The estimate (sketches): an exact count of millions of series would itself be
    # the biggest query of the month.
    series = cardinality(server, exact=False)
    q = code_queries(server, end_s * 1000, 1, 0)[0]
    after = vm(pid)
    return {"days": filled_days, "keys": len(keys), "points": written, "fill_s": fill_s,
            "series": series, "rss_filled": filled["VmRSS"], "rss_queried": after["VmRSS"],
            "hwm": after["VmHWM"], "top24_s": q.times[0]}


def cli_top(server, reps: int) -> dict:
    """`sitevis top --since 24h` (talkers, ingress, 15 rows) as the CLI answers it: from
    the portal's pass (the toplist measurement), as the grafana user."""
    from sitevis import talkers
    from sitevis.influx import Influx
    from sitevis.query import duration
    from tests.harness.influx_role import GRAFANA

    db = Influx(server.url, DB, *GRAFANA, timeout=600)
    times = []
    for _ in range(reps):
        t0 = time.monotonic()
        served = talkers.ahead(db, "talkers", duration("24h"), "ingress", SITE, 15)
        times.append(time.monotonic() - t0)
        if not served or not served[0]:
            raise BenchError("sitevis top found no pass of the portal to read (toplist)")
    return {"path": "sitevis top", "params": {"since": "24h", "by": "talkers"},
            "times": times, "ahead": True, "p95_s": p95(times)}


def run_queries(server, queries: list[Query], end_ms: int, boxes: int, reps: int,
                cap_s: float) -> None:
    """Each query `reps` times (fewer once it has taken cap_s), as Grafana sends it:
    variables All (every value, Grafana's (a|b|...)), $rp and the min interval from the
    role's selector, as the grafana user."""
    from sitevis import overview
    from tests.harness import grafana as g
    from tests.harness.influx_role import GRAFANA

    values = {"site": g.Value(SITE), "box": g.Value([_box(i) for i in range(boxes)]),
              "iface": g.Value("eth0"), "dir": g.Value(["egress", "ingress"])}
    for q in queries:
        start_ms = end_ms - q.span_s * 1000
        selector = {}
        for column in ("rp", "interval"):
            text = g.interpolate(overview.rp_query(column), {}, start_ms=start_ms,
                                 end_ms=end_ms, interval_s=1)
            selector[column] = server.rows(text, db=DB, auth=GRAFANA)[0][column]
        q.rp = str(selector["rp"])
        min_s = _seconds(str(selector["interval"]))
        text = g.interpolate(q.template, {**values, "rp": g.Value(q.rp)}, start_ms=start_ms,
                             end_ms=end_ms, interval_s=grafana_interval(q.span_s, min_s))
        spent = 0.0
        while len(q.times) < reps and (spent < cap_s or not q.times):
            t0 = time.monotonic()
            body = _get(server, text)
            q.times.append(time.monotonic() - t0)
            spent += q.times[-1]
            q.rows = sum(len(s.get("values") or []) for r in body.get("results", [])
                         for s in r.get("series", []))


def _get(server, text: str, *, auth: tuple[str, str] | None = None, timeout: float = 600,
         db: str | None = DB) -> dict:
    """One query over its own connection (as the grafana user unless `auth`), the way
    Grafana's datasource sends it; raises BenchError on an InfluxQL error."""
    import base64
    import urllib.parse
    import urllib.request

    from tests.harness.influx_role import GRAFANA

    user, password = auth or GRAFANA
    params = {"q": text, "epoch": "ms"} | ({"db": db} if db else {})
    req = urllib.request.Request(f"{server.url}/query?{urllib.parse.urlencode(params)}")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = json.loads(resp.read())
    for result in body.get("results", []):
        if "error" in result:
            raise BenchError(f"query failed: {result['error']}: {text[:200]}")
    return body


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(text[:-1]) * units[text[-1]]


def _box(i: int) -> str:
    from bench.sitegen import box_name

    return box_name(i)


# --- the load: boxes split over worker processes ------------------------------------------

def _worker(conn: Connection, spec: dict) -> None:
    """Keeps its boxes (and their budgets) across commands from the parent:
    ("run", first, last) intervals; ("replay", days): long.iface of the simulated day
    again for each of the `days` days before it; ("stop",)."""
    from tests.harness.influx_role import PASSWORDS

    auth = ("collector", PASSWORDS["influxdb_collector_password"])
    sims = [Box(SITE, i, PROFILES[spec["profile"]], spec["schema"], spec["interval"],
                spec["seed"]) for i in spec["boxes"]]
    step = int(spec["interval"] * 1e9)
    kept: list[Point] = []          # long.iface points, for the replay
    while True:
        cmd = conn.recv()
        if cmd[0] == "stop":
            conn.send({"folded": sum(s.folded for s in sims)})
            return
        cpu0 = time.process_time()
        writer = Writer(spec["url"], DB, auth=auth)
        batcher = Batcher(writer)
        try:
            if cmd[0] == "run":
                for k in range(cmd[1], cmd[2] + 1):
                    end_ns = spec["start_ns"] + k * step
                    for sim in sims:
                        points = list(sim.points(end_ns))
                        batcher.add("raw", b"".join(map(encode_line, points)), len(points))
                        longs = long_lines(points)
                        batcher.add("long", b"".join(longs), len(longs))
                        kept += [p for p in _long_points(points) if p.measurement == IFACE]
            else:
                day = 86400 * 10**9
                for d in range(1, cmd[1] + 1):
                    lines = [encode_line(p._replace(time_ns=p.time_ns - d * day)) for p in kept]
                    batcher.add("long", b"".join(lines), len(lines))
            batcher.flush()
        finally:
            stats = writer.close()
        conn.send({"stats": {rp: asdict(s) for rp, s in stats.items()},
                   "cpu": time.process_time() - cpu0})


def _long_points(points: list[Point]) -> list[Point]:
    from bench.sitegen import LONG_FIELDS, LONG_TAGS

    out = []
    for m, tags, fields, t in points:
        if m == IFACE:
            out.append(Point(m, {k: tags[k] for k in LONG_TAGS[m]},
                             {f: fields[f] for f in LONG_FIELDS[m]}, t - t % LONG_BUCKET_NS))
    return out


class Load:
    """Worker processes, each with a share of the boxes, run in lockstep by interval."""

    def __init__(self, workers: int, boxes: int, spec: dict) -> None:
        ctx = mp.get_context("fork")
        self.procs = []
        self.conns: list[Connection] = []
        for w in range(workers):
            parent, child = ctx.Pipe()
            share = {**spec, "boxes": list(range(w, boxes, workers))}
            proc = ctx.Process(target=_worker, args=(child, share), daemon=True)
            proc.start()
            self.procs.append(proc)
            self.conns.append(parent)
        self.stats: dict[str, WriteStats] = {}
        self.cpu = 0.0

    def command(self, *cmd: object) -> None:
        for conn in self.conns:
            conn.send(cmd)
        for conn in self.conns:
            answer = conn.recv()
            for rp, s in answer["stats"].items():
                self.stats.setdefault(rp, WriteStats()).add(WriteStats(**s))
            self.cpu += answer["cpu"]

    def close(self) -> int:
        folded = 0
        for conn in self.conns:
            with contextlib.suppress(OSError, EOFError):
                conn.send(("stop",))
                folded += conn.recv()["folded"]
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        return folded


# --- one run: a profile and a schema on a fresh influxd -------------------------------------

@dataclass
class Params:
    boxes: int = 100
    hours: float = 24.0
    interval: float = 300.0
    workers: int = 2
    reps: int = 10
    query_cap_s: float = 30.0
    old_seconds: float = 150.0          # wall-clock allowance of an old-schema day
    new_seconds: float = 900.0
    long_days: int = 6                  # days of long.iface before the simulated one
    fill_days: int = RAW_DAYS           # the raw retention filled with series (fill_month)
    seed: int = 0

    @property
    def k(self) -> float:
        """Real 10-s intervals per simulated interval."""
        return self.interval / REAL_INTERVAL


def run_one(profile: str, schema: str, p: Params, conf: str, binary: str,
            seed_dir: Path) -> dict:
    server = role_server(conf, binary)
    try:
        for sub in ("meta", "data", "wal"):
            if (seed_dir / sub).exists():
                shutil.copytree(seed_dir / sub, server.root / sub, dirs_exist_ok=True)
        server.start(timeout=60)
        assert server._proc is not None
        pid = server._proc.pid
        time.sleep(1.0)
        base = vm(pid)
        intervals = round(p.hours * 3600 / p.interval)
        step_s = p.interval
        end_s = int(time.time() // LONG_BUCKET_S) * LONG_BUCKET_S
        start_s = end_s - intervals * step_s
        spec = {"profile": profile, "schema": schema, "interval": p.interval,
                "seed": p.seed, "url": server.url, "start_ns": int(start_s * 1e9)}
        load = Load(p.workers, p.boxes, spec)
        samples: list[tuple[float, int]] = []     # (simulated hours, series estimate)
        allowance = p.old_seconds if schema == "old" else p.new_seconds
        t0 = time.monotonic()
        done = 0
        counting = 0.0
        try:
            # Hours of every box at a time (a quarter of that for the old schema, whose
            # allowance is checked between chunks); the first interval alone.
            size = max(1, round(3600 / p.interval) // (4 if schema == "old" else 1))
            chunks = [(1, 1)] + [(a, min(a + size - 1, intervals))
                                 for a in range(2, intervals + 1, size)]
            for first, last in chunks:
                load.command("run", first, last)
                done = last
                # Exact counts: 1.6's estimate (sketches) was off by 2x and noisy here.
                # Counting is left out of the allowance and of write_s.
                c0 = time.monotonic()
                samples.append((done * step_s / 3600, _series_now(server)))
                counting += time.monotonic() - c0
                if time.monotonic() - t0 - counting > allowance and done < intervals:
                    break
            write_s = time.monotonic() - t0 - counting
            if p.long_days:
                load.command("replay", p.long_days)
        finally:
            folded = load.close()
        at_writes = vm(pid)
        # The role's flow rollups over the simulated span (written with past times, which
        # their scheduled runs, over the last minutes only, never see).
        from tests.harness.influx import backfill_rollups
        from tests.harness.influx_role import ADMIN

        # The old schema stands for the design before the rollups: its top list reads raw.
        r0 = time.monotonic()
        if schema == "new":
            backfill_rollups(server, DB, int(start_s), int(start_s + (done + 1) * step_s),
                             auth=ADMIN)
        rollup_s = time.monotonic() - r0
        disk = {"data": du(server.root / "data" / DB), "wal": du(server.root / "wal" / DB)}
        try:
            series = cardinality(server, exact=True, timeout=300)
            exact = True
        except (BenchError, OSError):
            series, exact = cardinality(server, exact=False), False
        queries = dashboard_queries()
        # Queries over the simulated span's end; if the run stopped early, its end.
        q_end_ms = int((start_s + done * step_s) * 1000)
        run_queries(server, queries, q_end_ms, p.boxes, p.reps, p.query_cap_s)
        queries += code_queries(server, q_end_ms, p.reps, p.query_cap_s)
        # Every profile's 24-h top lists come from the portal's passes; the API is timed on
        # the internet-facing one.
        api = (portal_p95(server, p.reps, p.boxes, profile in API_PROFILES)
               if schema == "new" else [])
        after = vm(pid)
        month = fill_month(server, pid, p.fill_days, int(q_end_ms // 1000)) \
            if schema == "new" and p.fill_days > 1 else None
        raw = load.stats.get("raw", WriteStats())
        long = load.stats.get("long", WriteStats())
        return {
            "profile": profile, "schema": schema, "boxes": p.boxes,
            "hours": done * step_s / 3600, "hours_wanted": p.hours,
            "interval": p.interval, "write_s": write_s, "gen_cpu_s": load.cpu,
            "points": raw.points, "long_points": long.points,
            "refused": raw.refused + long.refused, "errors": raw.errors + long.errors,
            "server_errors": raw.server_errors + long.server_errors,
            "raw_bytes": raw.bytes, "folded_rows": folded,
            "series": series, "series_exact": exact, "samples": samples,
            "rss_base": base["VmRSS"], "rss_writes": at_writes["VmRSS"],
            "rss_end": after["VmRSS"], "hwm": after["VmHWM"],
            "disk": disk,
            "queries": [{"name": q.name, "rp": q.rp, "p95_s": q.p95, "n": len(q.times),
                         "rows": q.rows, "times": q.times} for q in queries],
            "rollup_backfill_s": rollup_s, "api": api, "month": month,
        }
    finally:
        server.cleanup()


LONG_BUCKET_S = LONG_BUCKET_NS // 10**9


# --- projections and the table ---------------------------------------------------------------

def derive(r: dict, p: Params) -> dict:
    """Per-day and 30-day figures from one run (bench/README.md says how)."""
    boxes, hours = r["boxes"], r["hours"]
    samples = r["samples"]
    first = samples[0][1]
    # series of the database at the end of writing, less what the long replay and the
    # selector add: raw's series are what the samples counted (estimates, HLL)
    s_end = samples[-1][1]
    mid = next((s for s in samples if s[0] >= hours / 2), samples[-1])
    span = hours - mid[0]
    rate_h = (s_end - mid[1]) / span if span > 0 else (s_end - first) / max(hours, 1e-9)
    day1 = s_end + rate_h * max(0.0, 24 - hours)      # measured when hours == 24
    new_per_day = 24 * rate_h
    # At the real key rate: the first interval has every recurring key; what grows after
    # it is churn, which the real collector creates k times as fast (old schema). The new
    # schema's growth is the budget's (per hour, independent of k): unscaled.
    churn_scale = p.k if r["schema"] == "old" else 1.0
    day1_real = first + (day1 - first) * churn_scale
    new_real = new_per_day * churn_scale
    s30 = day1_real + (RAW_DAYS - 1) * new_real
    grown = max(0, r["rss_writes"] - r["rss_base"])
    per_series = grown / max(1, r["series"])
    rss30 = r["rss_base"] + per_series * s30
    per_box30 = s30 / boxes
    fits = (TARGET_RSS - r["rss_base"]) / (per_series * per_box30) if per_series else math.inf
    disk = r["disk"]["data"] + r["disk"]["wal"]
    per_point = disk / max(1, r["points"] + r["long_points"])
    # Raw points of a real day: the stored ones x k (every row recurs per 10-s interval).
    points_real_day = r["points"] / max(hours, 1e-9) * 24 * p.k
    return {"series_day1": day1, "series_day1_real": day1_real,
            "series_box_day_real": day1_real / boxes, "new_series_per_day_real": new_real,
            "series_30d": s30, "ram_per_series": per_series, "rss_30d": rss30,
            "boxes_8gb": fits, "bytes_per_point": per_point,
            "disk_real_day": per_point * points_real_day,
            "points_real_day": points_real_day,
            "limit_hours": None}


def _gb(b: float) -> str:
    return f"{b / GIB:.2f} GiB" if b >= 0.1 * GIB else f"{b / (1 << 20):.0f} MiB"


def _num(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e4:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def _ratio(old: float, new: float) -> str:
    return f"{new / old:.3g}" if old else "-"


def table(profile: str, old: dict, new: dict, p: Params, max_series: int) -> Table:
    do, dn = derive(old, p), derive(new, p)
    t = Table(f"Site scale, {profile}: {PROFILES[profile].description}; {p.boxes} boxes",
              ["measure", "old", "new", "new/old", "target", "result"])

    def row(name: str, a: float, b: float, fmt=_num, target: str = "",
            ok: bool | None = None) -> None:
        t.add(name, fmt(a), fmt(b), _ratio(a, b), target,
              "" if ok is None else verdict(ok))
        if ok is not None:
            t.checks[f"{profile}: {name} {target}"] = ok

    t.add("simulated hours written", f"{old['hours']:.1f}", f"{new['hours']:.1f}", "",
          f"{p.hours:g}", "")
    row("raw points stored", old["points"], new["points"])
    row("points refused", old["refused"], new["refused"], target="0 (new)",
        ok=new["refused"] == 0)
    row("write 5xx answers (retried)", old["server_errors"], new["server_errors"])
    row("series in db at end (exact)", old["series"], new["series"])
    row("series, 1 day (stored density)", do["series_day1"], dn["series_day1"])
    row("series per box-day, real rate", do["series_box_day_real"], dn["series_box_day_real"])
    row("series after 30 d (projected)", do["series_30d"], dn["series_30d"],
        target=f"role limit {_num(max_series)}", ok=dn["series_30d"] <= max_series)
    row("influxd RSS at end of writes", old["rss_writes"], new["rss_writes"], fmt=_gb)
    row("influxd peak RSS (VmHWM)", old["hwm"], new["hwm"], fmt=_gb, target="<= 8 GiB",
        ok=new["hwm"] <= TARGET_RSS)
    row("RAM per series (RSS growth)", do["ram_per_series"], dn["ram_per_series"],
        fmt=lambda b: f"{b:.0f} B")
    row("influxd RSS at 30 d (linear projection)", do["rss_30d"], dn["rss_30d"], fmt=_gb)
    month = new.get("month")
    if month:
        # Measured: the raw policy's month filled with the day's series (fill_month).
        whole = month["days"] >= p.fill_days
        t.add(f"days of series filled (stops past {_gb(FILL_CEILING)})", "",
              str(month["days"]), "", str(p.fill_days), verdict(whole))
        t.checks[f"{profile}: days of series filled {p.fill_days}"] = whole
        t.add("series with the month filled (estimate)", "", _num(month["series"]), "", "",
              "")
        for name, value in (("influxd RSS, month filled", month["rss_filled"]),
                            ("influxd RSS, month filled, after the 24-h top",
                             month["rss_queried"]),
                            ("influxd peak RSS (VmHWM), whole run and fill", month["hwm"])):
            t.add(name, "", _gb(value), "", "<= 8 GiB", verdict(value <= TARGET_RSS))
            t.checks[f"{profile}: {name} <= 8 GiB"] = value <= TARGET_RSS
        t.notes.append(f"month filled: {_num(month['points'])} points ({month['keys']} keys "
                       f"x {month['days'] - 1} days, talkers new each day) in "
                       f"{month['fill_s']:.0f} s; the 24-h talkers through the rollups then "
                       f"took {month['top24_s']:.2f} s")
        # A fill stopped early is scaled to the whole month (RSS grows with the days' shards).
        grown = (month["rss_queried"] - new["rss_base"]) * (p.fill_days - 1) / max(
            1, month["days"] - 1)
        fits = p.boxes * (TARGET_RSS - new["rss_base"]) / grown if grown > 0 else math.inf
        t.notes.append(f"boxes per monitor (new, month filled, influxd RSS <= 8 GiB, "
                       f"linear in boxes): {_fits(fits)}")
    row("disk per stored point", do["bytes_per_point"], dn["bytes_per_point"],
        fmt=lambda b: f"{b:.1f} B")
    row("disk per real day (projected)", do["disk_real_day"], dn["disk_real_day"], fmt=_gb)
    for qo, qn in zip(old["queries"], new["queries"], strict=True):
        # The 24-h target is judged below on what sitevis serves (CLI, portal, API,
        # the overview dashboard): the portal's passes. These are the sums behind them.
        row(f"p95 {qn['name']} ({qn['rp']})", qo["p95_s"], qn["p95_s"],
            fmt=lambda s: f"{s:.3f} s")
        if qn["rp"] == "raw":
            row(f"  x{p.k:g} (real density, linear)", qo["p95_s"] * p.k, qn["p95_s"] * p.k,
                fmt=lambda s: f"{s:.2f} s")
    row("rollup backfill (what the CQs sum as it is written)", old["rollup_backfill_s"],
        new["rollup_backfill_s"], fmt=lambda s: f"{s:.0f} s")
    for call in new["api"]:
        since = call["params"].get("since", "")
        how = " (computed ahead)" if call.get("ahead") else ""
        if "start" in call["params"]:
            since, how = f"{call.get('preset')} as start/end", " (at request time)"
        label = f"{call['path']} {since}".strip()
        target = TARGET_API_S.get(label) if call["params"].get("by", "talkers") == "talkers" \
            else None
        if call["path"] == "/api/series/traffic/" and call["params"].get("box"):
            target = None      # the target is the site's series per box
        what = call["params"].get("by", call["params"].get("per", ""))
        name = f"portal API p95 {label}"
        if call["path"] == "health --once":
            name, what = "portal health --once", "(all at once: rules, boxes, every pass)"
        if call["path"] == "dashboard":
            name, what = "p95 dashboard panel Top talkers, last 24 h", "(toplist)"
            target = TARGET_TOP24_S
        if call["path"].startswith("health ") and call["path"] != "health --once":
            part = call["path"].removeprefix("health ")
            name, what = f"portal {part}", f"({call['params']['boxes']} boxes, one round)"
            target = HEALTH_TARGET_S[part]
        if call["path"] == "sitevis top":
            name, what = "p95 sitevis top --since 24h", "(toplist)"
            target = TARGET_TOP24_S
        t.add(f"{name} {what}{how}",
              "", f"{call['p95_s']:.3f} s", "", f"<= {target} s" if target else "",
              verdict(call["p95_s"] <= target) if target else "")
        if target:
            t.checks[f"{profile}: {name} <= {target} s"] = call["p95_s"] <= target
    for name, d in (("old", do), ("new", dn)):
        t.notes.append(f"boxes per monitor ({name}, 30 d, influxd RSS <= 8 GiB): "
                       f"{_fits(d['boxes_8gb'])} ({_num(d['series_box_day_real'])} series "
                       f"per box-day, {d['ram_per_series']:.0f} B RAM per series)")
    if old["hours"] < p.hours:
        t.notes.append(f"old: stopped after {old['hours']:.1f} of {p.hours:g} simulated hours "
                       f"({old['write_s']:.0f} s allowance); its 1-day figures are "
                       "extrapolated from the last half of what it wrote")
    if max_series:
        t.notes.append(f"old at the real key rate reaches the role's max-series-per-database "
                       f"({_num(max_series)}) after "
                       f"{_hours_to(max_series, do):.1f} h")
    for r in (old, new):
        if r["errors"]:
            t.notes.append(f"{r['schema']}: refused: {r['errors'][0][:160]}")
    t.data = {"old": {**old, **do}, "new": {**new, **dn}}
    return t


def _hours_to(limit: int, d: dict) -> float:
    day1 = d["series_day1_real"]
    if day1 >= limit:
        return 24 * limit / day1
    return 24 + (limit - day1) / max(d["new_series_per_day_real"], 1e-9) * 24


def _fits(boxes: float) -> str:
    if boxes == math.inf:
        return "unbounded"
    return f"{boxes:.0f}" if boxes >= 1 else f"{boxes:.2f}"


def max_series_of(conf: str) -> int:
    for line in conf.splitlines():
        if line.strip().startswith("max-series-per-database"):
            return int(line.split("=")[1])
    return 0


def measure(p: Params, profiles: list[str], *, log=print) -> list[Table]:
    from tests.harness.influx import find_influxd

    binary = find_influxd()
    if binary is None:
        raise BenchError("influxd not installed (Debian package influxdb)")
    tmp = Path(tempfile.mkdtemp(prefix="sitevis-sitescale-"))
    try:
        conf = render_config(tmp, p.boxes)
        seed = seed_schema(conf, binary, tmp, p.boxes)
        tables = []
        for profile in profiles:
            runs = {}
            for schema in ("old", "new"):
                t0 = time.monotonic()
                runs[schema] = run_one(profile, schema, p, conf, binary, seed)
                log(f"# {profile}/{schema}: {runs[schema]['hours']:.1f} h simulated, "
                    f"{runs[schema]['points']} points, {runs[schema]['series']} series, "
                    f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
            t = table(profile, runs["old"], runs["new"], p, max_series_of(conf))
            log(t.render(), end="\n\n", flush=True)
            tables.append(t)
        return tables
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.sitescale", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 boxes, 2 simulated hours")
    ap.add_argument("--boxes", type=int)
    ap.add_argument("--hours", type=float)
    ap.add_argument("--interval", type=float, help="simulated interval, s (default 300)")
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--old-seconds", type=float, help="wall-clock allowance of an old day")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)
    p = Params(workers=args.workers)
    if args.quick:
        p = Params(boxes=3, hours=1, reps=3, query_cap_s=3, old_seconds=5, new_seconds=30,
                   long_days=1, workers=args.workers)
    for name in ("boxes", "hours", "interval", "reps", "old_seconds"):
        if getattr(args, name) is not None:
            setattr(p, name, getattr(args, name))
    profiles = [x for x in args.profiles.split(",") if x]
    if unknown := set(profiles) - set(PROFILES):
        ap.error(f"unknown profiles {sorted(unknown)}")
    t0 = time.monotonic()
    try:
        tables = measure(p, profiles)
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    summary = Table(f"Site scale targets (issue 14), {time.monotonic() - t0:.0f} s",
                    ["target", "result"])
    for t in tables:
        for name, ok in t.checks.items():
            summary.add(name, verdict(ok))
    print(summary.render())
    if args.json:
        args.json.write_text(json.dumps({"params": asdict(p), "profiles": {
            t.title.split(",")[1].split(":")[0].strip(): t.data for t in tables}},
            indent=1, default=str))
    return 0 if all(t.passed for t in tables) else 1


if __name__ == "__main__":
    sys.exit(main())
