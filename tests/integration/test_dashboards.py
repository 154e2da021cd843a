"""Every dashboard query, as Grafana would send it, against what a real collector wrote.

The influxdb role's schema tasks set up a private influxd (database, policies, users,
the retention policy selector), one real sitevis-collector run over a real netns link
fills it (raw RP), the role's downsampling query fills the long RP, then every variable
query and every panel query of dashboards/json/ runs and is checked against the traffic
sent, over a 1 h range (where the selector picks raw) and a 30 d one (long).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sitevis_collector.kernel.bpfstats import enabled_stats

from dashboards import box_detail, collector_health, flow_explorer, site_overview
from sitevis import overview
from sitevis.influx import Influx
from sitevis.portal.traffic.timerange import resolve
from tests.harness import grafana as g
from tests.harness import influx_role
from tests.harness.bpf import bcc_unusable_reason
from tests.harness.influx import InfluxServer, find_influxd
from tests.harness.netns import HostLink, create_link, destroy_link
from tests.harness.tools import tool
from tests.integration.collector.collector_proc import (
    FRAME_BYTES,
    PORT,
    send_udp,
    start,
    stop,
    wait_attached,
    write_config,
)

REPO = Path(__file__).parents[2]
JSON_DIR = REPO / "dashboards" / "json"
INFLUX_DEFAULTS = yaml.safe_load((REPO / "roles/influxdb/defaults/main.yml").read_text())
DB = INFLUX_DEFAULTS["influxdb_database"]
RAW = INFLUX_DEFAULTS["influxdb_raw_retention_policy"]
LONG = INFLUX_DEFAULTS["influxdb_long_retention_policy"]
SITE, BOX = "lab", "box 1"
UDP_PACKETS = 400
UDP_BATCHES = 2
TCP_ATTEMPTS = 3
CLOSED_PORT = 12345          # nothing listens on the test host: each connect gets a RST
RST_FRAME = 14 + 20 + 20     # Ethernet + IPv4 + TCP without options
SAMPLE_RATE = 10
# Dashboard time ranges ending just after the run, and the policy the selector the
# influxdb role writes must pick for each (defaults: raw up to 2 d, long beyond).
SPAN_MS = {"1h": 3_600_000, "30d": 30 * 86_400_000}
SPANS = {RAW: "1h", LONG: "30d"}
SELECTED = {"1h": (RAW, INFLUX_DEFAULTS["influxdb_raw_interval"]),
            "30d": (LONG, INFLUX_DEFAULTS["influxdb_downsample_interval"])}
UNIT_S = {"s": 1, "m": 60, "h": 3600}


def seconds(interval: str) -> int:
    return int(interval[:-1]) * UNIT_S[interval[-1]]


def options(rows: list[dict]) -> list[str]:
    """A query variable's values from its rows, as Grafana takes them: SHOW TAG VALUES'
    value column, else each row's one value (beside its time)."""
    return [r["value"] if "value" in r else next(v for k, v in r.items() if k != "time")
            for r in rows]


@dataclass(frozen=True)
class Site:
    influx: InfluxServer
    link: HostLink
    end_ms: int         # the dashboard's time range: the last hour or 30 days up to here,
    began_ms: int       # within which the collector ran from began to stopped
    stopped_ms: int

    def selected(self, span: str) -> dict[str, str]:
        """rp and rp_interval as the dashboards' own variable queries give them."""
        board = _boards()[site_overview.UID]
        out = {}
        for var in g.variables(board):
            if var["name"] in ("rp", "rp_interval"):
                [out[var["name"]]] = options(self.run(var["query"], {}, span=span))
        return out

    def values(self, span: str = "1h", silent: str = "1h", **extra: g.Value) -> dict:
        """Variable values a user would pick (rp: what Grafana picks) to see this run."""
        chosen = self.selected(span)
        return {"site": g.Value(SITE), "box": g.Value(BOX), "iface": g.Value(self.link.ifname),
                "dir": g.Value(["egress", "ingress"]), "rp": g.Value(chosen["rp"]),
                "rp_interval": g.Value(chosen["rp_interval"]), "silent": g.Value(silent),
                "ahead": g.Value("24h"), "src": g.Value(""), "dst": g.Value(""),
                "service": g.Value([f"tcp/{CLOSED_PORT}", f"udp/{PORT}"]), **extra}

    def run(self, query: str, values: dict, interval_s: int = 10,
            span: str = "1h") -> list[dict]:
        text = g.interpolate(query, values, start_ms=self.end_ms - SPAN_MS[span],
                             end_ms=self.end_ms, interval_s=interval_s)
        return self.influx.rows(text, db=DB)


def _downsample(influx: InfluxServer) -> None:
    """What the influxdb role's continuous queries write into the long RP, run now."""
    interval = INFLUX_DEFAULTS["influxdb_downsample_interval"]
    for measurement, fields in INFLUX_DEFAULTS["influxdb_downsample_measurements"].items():
        select = ", ".join(f"sum({f}) AS {f}" for f in fields)
        influx.query(f"SELECT {select} INTO {DB}.{LONG}.{measurement} "
                     f"FROM {DB}.{RAW}.{measurement} WHERE time > now() - 1h "
                     f"GROUP BY time({interval}), *", db=DB)


def _without_downsampling_queries(influx: InfluxServer) -> None:
    """Drop the role's downsampling CQs: `_downsample` writes the long RP at a known time
    (with every tag, so the 30-d panels find the run's talkers), while InfluxDB would run
    the role's at the next 5-minute boundary and add a second, address-free copy of the
    run's sums to long whenever the module crosses one."""
    names = [row["name"] for row in influx.rows("SHOW CONTINUOUS QUERIES", db=DB)
             if row["name"].startswith("sitevis_") and "rollup" not in row["name"]]
    assert names, "the role made no downsampling query"
    for name in names:
        influx.query(f'DROP CONTINUOUS QUERY "{name}" ON "{DB}"', db=DB)


def _day_lists(influx: InfluxServer) -> None:
    """The day's top lists as the portal's health loop writes them for the dashboards
    (sitevis/portal/traffic/ahead.py: summed, then `points`), from this run's flows."""
    from sitevis.portal.traffic import ahead

    db = Influx(influx.url, DB)
    day = resolve("24h", None, None, None)
    lines = [line for by in ("talkers", "services")
             for line in ahead.points(ahead.summed(db, RAW, by, "24h", day))]
    assert influx.write(DB, "\n".join(lines)) == 204


def _tcp_refused(host_ip: str) -> None:
    for _ in range(TCP_ATTEMPTS):
        with socket.socket() as sock:
            sock.settimeout(5)
            # No linger: close() must not add a FIN to the connection we count.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with pytest.raises(ConnectionRefusedError):
                sock.connect((host_ip, CLOSED_PORT))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if os.geteuid() != 0:
        pytest.skip("needs root for BPF and network namespaces")
    reason = bcc_unusable_reason()
    if reason:
        pytest.skip(reason)
    binary = find_influxd()
    if binary is None:
        pytest.skip("influxd not installed (Debian package influxdb)")
    tmp = tmp_path_factory.mktemp("dashboards")
    influx = InfluxServer(binary)
    link = None
    stats = contextlib.ExitStack()
    try:
        influx.start()
        # The role's own schema tasks: database, policies (raw the default), the
        # downsampling CQs, users and the retention policy selector.
        influx_role.stats(influx_role.apply_schema(influx, tmp / "role"))
        _without_downsampling_queries(influx)
        link = create_link()
        began_ms = time.time_ns() // 1_000_000
        # BPF run stats only while this run lasts, for the ns/packet panel.
        stats.enter_context(enabled_stats())
        proc = start(write_config(tmp, link, influx.url, site=SITE, box=BOX,
                                  sample_rate=SAMPLE_RATE))
        wait_attached(link.ifname, proc)
        # Traffic in several 1 s intervals: ns/packet needs runs between two of them.
        for _ in range(UDP_BATCHES):
            send_udp(link.peer, link.ip, UDP_PACKETS // UDP_BATCHES)
            time.sleep(1.1)
        _tcp_refused(link.peer.ip)
        time.sleep(1.5)
        rc, err = stop(proc)
        assert rc == 0, err
        stopped_ms = time.time_ns() // 1_000_000
        stats.close()
        _downsample(influx)
        _day_lists(influx)
        time.sleep(1.2)      # so the box is silent for $silent = 1s
        # Ranges wider than the run, as a user's "last hour" is: the long RP's points
        # sit at the start of their 5-minute bucket, before the run began.
        yield Site(influx, link, stopped_ms + 60_000, began_ms, stopped_ms)
    finally:
        stats.close()
        if link is not None:
            destroy_link(link)
        influx.cleanup()


def _boards() -> dict[str, dict]:
    return {p.stem: g.load(p) for p in sorted(JSON_DIR.glob("*.json"))}


def _query(panel_title: str, board_uid: str, ref_id: str = "A") -> str:
    for panel, target in g.targets(_boards()[board_uid]):
        if panel.get("title") == panel_title and target["refId"] == ref_id:
            return target["query"]
    raise AssertionError(f"no panel {panel_title!r} in {board_uid}")


def _cases() -> list[tuple[str, str, str, str]]:
    """(dashboard, panel, refId, span) for every target; those reading $rp also over the
    range where the selector picks long."""
    out = []
    for uid, board in _boards().items():
        for panel, target in g.targets(board):
            for span in (SPANS.values() if '"$rp".' in target["query"] else ["1h"]):
                out.append((uid, panel["title"], target["refId"], span))
    return out


# Panels whose right answer for this run is "nothing": one box, still reporting at 1h.
EXPECTED_EMPTY = {(site_overview.UID, "Silent boxes")}


@pytest.mark.parametrize(("uid", "title", "ref_id", "span"), _cases())
def test_every_panel_query_runs_and_has_data(site: Site, uid: str, title: str, ref_id: str,
                                             span: str):
    board = _boards()[uid]
    panel, target = next((p, t) for p, t in g.targets(board)
                         if p["title"] == title and t["refId"] == ref_id)
    values = site.values(span)
    step = (seconds(values["rp_interval"].value) if panel.get("interval") == "$rp_interval"
            else 10)
    rows = site.run(target["query"], values, interval_s=step, span=span)
    if (uid, title) in EXPECTED_EMPTY:
        assert rows == []
    else:
        assert rows, f"{title}: no rows for {target['query']}"


@pytest.mark.parametrize("span", SELECTED)
def test_the_rp_variables_follow_the_time_range(site: Site, span: str):
    """Every dashboard's rp / rp_interval query answers one value each: raw for the last
    hour, long for the last 30 days (the role's defaults)."""
    for uid, board in _boards().items():
        got = {}
        for var in g.variables(board):
            if var["name"] in ("rp", "rp_interval"):
                got[var["name"]] = options(site.run(var["query"], {}, span=span))
        if got:
            want = SELECTED[span]
            assert got == {"rp": [want[0]], "rp_interval": [want[1]]}, uid


def test_variable_queries_list_the_real_tags(site: Site):
    want = {"site": [SITE], "box": [BOX], "iface": [site.link.ifname],
            "dir": ["egress", "ingress"], "rp": [RAW],
            "rp_interval": [INFLUX_DEFAULTS["influxdb_raw_interval"]]}
    for uid, board in _boards().items():
        for var in g.variables(board):
            if var["type"] != "query":
                continue
            got = sorted(options(site.run(var["query"], site.values())))
            if var["name"] == "service":
                # What crossed the link: ours, the refused TCP, ICMP errors, IPv6 ND, ARP.
                assert {f"udp/{PORT}", f"tcp/{CLOSED_PORT}", "eth/0x0806"} <= set(got)
            else:
                assert got == want[var["name"]], (uid, var["name"])


def _sum(rows: list[dict], column: str) -> float:
    return sum(r[column] or 0 for r in rows)


@pytest.mark.parametrize("span", SELECTED)
def test_top_talker_and_service_are_the_bytes_sent(site: Site, span: str):
    sent = UDP_PACKETS * FRAME_BYTES
    values = site.values(span)
    assert values["rp"].value == SELECTED[span][0]
    # The test host sent us the UDP packets and one RST per refused connection.
    talkers = site.run(overview.TOP_TALKERS, values, span=span)
    top = max(talkers, key=lambda r: r["bytes"])
    assert (top["src"], top["dst"], top["bytes"]) == (
        site.link.peer.ip, site.link.ip, sent + TCP_ATTEMPTS * RST_FRAME)
    services = {r["service"]: r["bytes"]
                for r in site.run(overview.TOP_SERVICES, values, span=span)}
    assert services[f"udp/{PORT}"] == sent


def test_the_day_s_top_lists_are_the_bytes_sent(site: Site):
    """The 24-h panels read the newest pass of the portal's lists (sitevis/toplist.py):
    the UDP sent is the first talker and the first service, with its bytes; ranks not
    filled are empty, and the rest is in `other`."""
    values = site.values()
    talkers = site.run(_query("Top talkers, last $ahead", site_overview.UID), values)
    first, *rest = talkers
    assert (first["rank"], first["src"], first["dst"], first["site"]) == (
        "01", site.link.peer.ip, site.link.ip, SITE)
    assert first["bytes"] >= UDP_PACKETS * FRAME_BYTES
    # The rest of the run's frames (IPv6 router solicitations, ARP): ranked by bytes, no
    # empty rank shown.
    assert [r["rank"] for r in talkers] == [f"{n:02d}" for n in range(1, len(talkers) + 1)]
    assert all(0 < r["bytes"] <= first["bytes"] for r in rest)
    services = site.run(_query("Top services, last $ahead", site_overview.UID), values)
    udp = next(r for r in services if r["service"] == f"udp/{PORT}")
    assert (udp["bytes"], udp["packets"]) == (UDP_PACKETS * FRAME_BYTES, UDP_PACKETS)


@pytest.mark.parametrize("span", SELECTED)
def test_rates_add_up_to_the_totals(site: Site, span: str):
    """bps * bucket / 8 over the range is the bytes the box carried, equal to the flow
    totals (protocol mix), and at least what was sent in; buckets are the selected
    policy's resolution (the panels' min interval)."""
    values = site.values(span)
    assert values["rp"].value == SELECTED[span][0]
    step = seconds(values["rp_interval"].value)
    by_dir: dict[str, float] = {}
    for row in site.run(overview.BOX_BPS, values, step, span):
        by_dir[row["dir"]] = by_dir.get(row["dir"], 0) + row["bytes"] * step / 8
    mix = {r["proto"]: r["bytes"] for r in site.run(overview.PROTOCOL_MIX, values, step, span)}
    assert round(sum(by_dir.values())) == sum(mix.values())
    assert by_dir["ingress"] >= UDP_PACKETS * FRAME_BYTES
    assert mix["udp"] >= UDP_PACKETS * FRAME_BYTES
    packets = sum(r["packets"] * step
                  for r in site.run(overview.IFACE_PPS, values, step, span))
    assert round(packets) >= UDP_PACKETS + 2 * TCP_ATTEMPTS


def test_flow_explorer_filters_to_the_flow_sent(site: Site):
    values = site.values(src=g.Value(site.link.peer.ip), service=g.Value(f"udp/{PORT}"))
    rows = site.run(flow_explorer.FLOWS, values)
    assert [(r["src"], r["dst"], r["dir"], r["packets"], r["bytes"]) for r in rows] == [
        (site.link.peer.ip, site.link.ip, "ingress", UDP_PACKETS, UDP_PACKETS * FRAME_BYTES)]
    assert site.run(flow_explorer.FLOWS, site.values(src=g.Value("203.0.113."))) == []


def test_syn_and_rst_panels_count_the_refused_connections(site: Site):
    syn = site.run(_query("TCP SYN / RST", box_detail.UID, "A"), site.values())
    rst = site.run(_query("TCP SYN / RST", box_detail.UID, "B"), site.values())
    per_dir = {d: (sum(r["syn"] * 10 for r in syn if r["dir"] == d),
                   sum(r["rst"] * 10 for r in rst if r["dir"] == d))
               for d in ("egress", "ingress")}
    # Our SYNs leave (egress); the test host's RSTs come back (ingress).
    assert per_dir == {"egress": (TCP_ATTEMPTS, 0), "ingress": (0, TCP_ATTEMPTS)}
    assert _sum(site.run(box_detail.ACTIVE_FLOWS, site.values()), "flows") > 0


def test_sampled_packets_table_shows_the_udp_packets(site: Site):
    rows = site.run(box_detail.PACKETS, site.values())
    ours = [r for r in rows if r["src"] == site.link.peer.ip and r["dport"] == PORT]
    assert ours and all(r["sample_rate"] == SAMPLE_RATE and r["proto"] == "udp"
                        and r["length"] == FRAME_BYTES and r["dir"] == "ingress" for r in ours)


def test_collector_health_panels(site: Site):
    values = site.values()
    coverage = [r["coverage"] for r in site.run(collector_health.COVERAGE, values)
                if r["coverage"] is not None]
    assert coverage and all(0 < c <= 1.0 for c in coverage) and max(coverage) == 1.0
    for query, column in ((collector_health.OVERFLOWS, "overflows"),
                          (collector_health.RINGBUF_LOST, "lost"),
                          (collector_health.WRITE_ERRORS, "connection"),
                          (collector_health.SPOOL, "spool")):
        rows = site.run(query, values)
        assert rows and _sum(rows, column) == 0, column   # a healthy run loses nothing
    ns = [r["ns"] for r in site.run(collector_health.BPF_NS, values) if r["ns"] is not None]
    assert ns and all(0 < n < 100_000 for n in ns)
    assert _sum(site.run(collector_health.FLOWS_EXPORTED, values), "flows") > 0
    [seen] = site.run(collector_health.LAST_SEEN, values)
    assert seen["box"] == BOX and seen["interfaces"] == 1
    assert site.began_ms * 1_000_000 < seen["time"] <= site.stopped_ms * 1_000_000


def test_silent_boxes_after_the_collector_stopped(site: Site):
    """Stopped more than a second ago: silent for $silent = 1s, not for 1h."""
    quiet = site.values(silent="1s")
    rows = site.run(site_overview.SILENT_BOXES, quiet)
    assert [(r["box"], r["interfaces"]) for r in rows] == [(BOX, 1)]
    assert site.run(site_overview.REPORTING_BOXES, quiet) == []
    [reporting] = site.run(site_overview.REPORTING_BOXES, site.values(silent="1h"))
    assert reporting["boxes"] == 1


def test_every_dashboard_marks_the_portal_s_rollouts_of_its_site(site: Site):
    """A rollout's start and end (what the portal's worker writes, docs/schema.md) come
    back from each dashboard's annotation query with the fields its mappings name; a
    rollout of another site does not."""
    at_ns = (site.end_ms - 120_000) * 1_000_000
    lines = [f'rollout,site={SITE},playbook=site,outcome={outcome} rollout_id=7i,rc={rc}i,'
             f'duration_s={duration},check=false,launched_by="ops",source="web" {at_ns + shift}'
             for outcome, rc, duration, shift in (("started", -1, 0.0, 0),
                                                  ("succeeded", 0, 42.5, 42_500_000_000))]
    lines.append(f'rollout,site=elsewhere,playbook=remove,outcome=started rollout_id=8i,rc=-1i,'
                 f'duration_s=0,check=false,launched_by="x",source="api" {at_ns}')
    assert site.influx.write(DB, "\n".join(lines)) == 204
    for uid, board in _boards().items():
        [annotation] = g.annotation_queries(board)
        assert annotation["name"] == "Rollouts" and annotation["enable"], uid
        rows = site.run(annotation["target"]["query"], site.values())
        shown = {name: mapping["value"] for name, mapping in annotation["mappings"].items()}
        assert sorted((r[shown["title"]], r[shown["tags"]], r[shown["text"]])
                      for r in rows) == [("site", "started", "ops"), ("site", "succeeded",
                                                                       "ops")], uid


def test_report_draws_the_overview(site: Site, tmp_path: Path):
    out = tmp_path / "report.png"
    proc = subprocess.run(
        [tool("sitevis"), "report", "--url", site.influx.url,
         "--site", SITE, "--since", "10m", "-o", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1170, 720)
    assert out.stat().st_size > 20_000     # four drawn panels, not an empty canvas
    if os.environ.get("SITEVIS_REPORT_EXAMPLE"):
        Path(os.environ["SITEVIS_REPORT_EXAMPLE"]).write_bytes(out.read_bytes())
    downsampled = subprocess.run(
        [tool("sitevis"), "report", "--url", site.influx.url,
         "--rp", LONG, "--since", "1h", "-o", str(tmp_path / "long.png")],
        capture_output=True, text=True, timeout=120)
    assert downsampled.returncode == 0, downsampled.stderr


def test_report_picks_the_retention_policy_like_the_dashboards(site: Site):
    """`sitevis report` (default --rp auto) asks the same selector the dashboards ask."""
    from sitevis.influx import Influx
    from sitevis.report import FALLBACK_RP, choose_rp

    end_s = site.end_ms // 1000
    for span, (rp, _interval) in SELECTED.items():
        assert choose_rp(Influx(site.influx.url, DB), end_s - SPAN_MS[span] // 1000,
                         end_s) == rp
    # Addresses live in raw only: talkers over 7 days read raw (its start is within the
    # raw retention), where the other views of those 7 days read long.
    from sitevis.retention import resolve, resolve_talkers
    week_ago = end_s - 7 * 86_400
    assert resolve(Influx(site.influx.url, DB), "auto", week_ago, end_s) == LONG
    assert resolve_talkers(Influx(site.influx.url, DB), "auto", week_ago) == RAW
    assert resolve_talkers(Influx(site.influx.url, DB), "auto", end_s - 40 * 86_400) == LONG
    # A monitor without the selector (set up before it): the raw policy, no error.
    site.influx.query("CREATE DATABASE bare")
    assert choose_rp(Influx(site.influx.url, "bare"), end_s - 3600, end_s) == FALLBACK_RP


def test_report_without_data_is_one_line(site: Site, tmp_path: Path):
    proc = subprocess.run(
        [tool("sitevis"), "report", "--url", site.influx.url,
         "--site", "nowhere", "-o", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("sitevis report: no data for site nowhere")
    assert len(proc.stderr.splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_report_unreachable_influxdb_is_one_line(tmp_path: Path):
    proc = subprocess.run(
        [tool("sitevis"), "report", "--url", "http://127.0.0.1:9",
         "-o", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "sitevis report: cannot reach InfluxDB at http://127.0.0.1:9: "
        "[Errno 111] Connection refused"]


def test_report_sends_credentials_and_names_a_refusal(influxdb_auth: InfluxServer,
                                                      tmp_path: Path):
    influxdb_auth.query("CREATE USER admin WITH PASSWORD 'right' WITH ALL PRIVILEGES")
    influxdb_auth.query(f"CREATE DATABASE {DB}", auth=("admin", "right"))
    secret = tmp_path / "password"
    secret.write_text("right\n")

    def report(*auth: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("sitevis"), "report", "--url", influxdb_auth.url,
             "--rp", "autogen", *auth, "-o", str(tmp_path / "x.png")],
            capture_output=True, text=True, timeout=120)

    wrong = report("--user", "admin", "--password", "wrong")
    assert wrong.returncode == 1 and len(wrong.stderr.splitlines()) == 1
    assert wrong.stderr.startswith(f"sitevis report: InfluxDB at {influxdb_auth.url} "
                                   "answered 401")
    right = report("--user", "admin", "--password-file", str(secret))
    assert right.returncode == 1       # accepted, and the database is empty
    assert right.stderr.startswith("sitevis report: no data for any site")


def test_report_without_a_known_influxdb_is_one_line(tmp_path: Path):
    """No --url and an inventory the rollout never recorded a monitor for."""
    proc = subprocess.run(
        [tool("sitevis"), "report", "-i", str(tmp_path),
         "-o", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("sitevis report: no InfluxDB known for ")
    assert len(proc.stderr.splitlines()) == 1
