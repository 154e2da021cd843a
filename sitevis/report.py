"""`sitevis report`: the site overview's main panels from InfluxDB into one PNG.

For people (and CI jobs) without Grafana. The queries are the dashboard's own
(sitevis.overview) with Grafana's macros filled in here, so both show the same numbers.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sitevis import overview
from sitevis.connection import connect
from sitevis.influx import Influx, InfluxError, Series

DURATION = re.compile(r"^(\d+)([smhdw])$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # what the influxdb role names RPs
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Same resolution floor as the dashboards: the collector interval, or the long RP's 5 min.
MIN_STEP = {"raw": 10, "long": 300}
POINTS = 240  # buckets across the time range, about what a Grafana panel asks for
REGEX_SPECIALS = re.compile(r"([\\^$*+?.()|\[\]{}/])")


class ReportError(Exception):
    pass


def parse_duration(text: str) -> int:
    """'90s', '15m', '1h', '7d', '2w' (or '0') as seconds."""
    if text == "0":
        return 0
    match = DURATION.match(text)
    if not match:
        raise ReportError(f"{text!r} is not a duration like 30m, 1h or 7d")
    return int(match[1]) * UNIT_SECONDS[match[2]]


def regex_literal(value: str) -> str:
    """A value matched exactly inside InfluxQL's /^...$/ (as Grafana escapes it)."""
    return REGEX_SPECIALS.sub(r"\\\1", value)


def step_seconds(range_s: int, rp: str) -> int:
    return max(MIN_STEP.get(rp, 10), math.ceil(range_s / POINTS))


AUTO = "auto"
FALLBACK_RP = "raw"


def choose_rp(influx: Influx, start_s: int, end_s: int) -> str:
    """The retention policy for the range, as the dashboards choose it: the influxdb
    role's selector; raw where there is no selector (a monitor set up before it)."""
    query = re.sub(r"\$\{(__from|__to)\}",
                   lambda m: str((start_s if m[1] == "__from" else end_s) * 1000),
                   overview.rp_query("rp"))
    try:
        series = influx.query(query)
    except InfluxError as err:
        if "not found" not in str(err):  # database/RP missing: no selector
            raise
        series = []
    for s in series:
        for row in s.values:
            value = row[s.columns.index("rp")]
            if isinstance(value, str) and IDENTIFIER.match(value):
                return value
    return FALLBACK_RP


def fill(template: str, *, site: str | None, start_ms: int, end_ms: int, step_s: int,
         rp: str) -> str:
    """Grafana's interpolation of the overview's templates, for all boxes/interfaces."""
    values = {
        "timeFilter": f"time >= {start_ms}ms AND time <= {end_ms}ms",
        "__interval_ms": str(step_s * 1000),
        "__interval": f"{step_s}s",
        "site": regex_literal(site) if site else ".*",
        "box": ".*", "iface": ".*", "dir": ".*", "rp": rp,
    }
    return re.sub(r"\$(\w+)", lambda m: values[m[1]], template)


@dataclass
class Overview:
    """What the report draws: one list of series per panel."""

    traffic: list[Series] = field(default_factory=list)
    talkers: list[Series] = field(default_factory=list)
    services: list[Series] = field(default_factory=list)
    protocols: list[Series] = field(default_factory=list)

    def empty(self) -> bool:
        return not any(s.values for s in (*self.traffic, *self.talkers, *self.services,
                                          *self.protocols))


def collect(influx: Influx, *, site: str | None, start_s: int, end_s: int,
            rp: str) -> Overview:
    step = step_seconds(end_s - start_s, rp)

    def run(template: str) -> list[Series]:
        return influx.query(fill(template, site=site, start_ms=start_s * 1000,
                                 end_ms=end_s * 1000, step_s=step, rp=rp))

    return Overview(traffic=run(overview.BOX_BPS), talkers=run(overview.TOP_TALKERS),
                    services=run(overview.TOP_SERVICES), protocols=run(overview.PROTOCOL_MIX))


def _rows(series: list[Series], label_columns: tuple[str, ...]) -> list[tuple[str, float]]:
    """(label, bytes) of TOP() rows, largest first."""
    rows: list[tuple[str, float]] = []
    for s in series:
        idx = {c: i for i, c in enumerate(s.columns)}
        for v in s.values:
            # Non-IP rows (ARP, ...) carry no addresses: InfluxDB stores no empty tags.
            label = " → ".join(str(v[idx[c]] or "-") for c in label_columns)
            rows.append((label, float(v[idx["bytes"]] or 0)))
    return sorted(rows, key=lambda r: -r[1])


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def draw(data: Overview, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(2, 2, figsize=(13, 8), dpi=90)
    fig.suptitle(title)
    ax = axes[0][0]
    ax.set_title("Traffic per box (bits/s)")
    for s in data.traffic:
        times = [datetime.fromtimestamp(v[0] / 1000, UTC) for v in s.values]
        arrow = {"ingress": "in", "egress": "out"}.get(s.tags.get("dir", ""), "?")
        ax.plot(times, [v[1] or 0 for v in s.values], label=f"{s.tags.get('box')} {arrow}")
    if data.traffic:
        ax.legend(fontsize="small")
    ax.yaxis.set_major_formatter(EngFormatter(unit="b/s"))
    ax.tick_params(axis="x", labelrotation=20, labelsize="small")
    for ax, name, series, cols in (
            (axes[0][1], "Top talkers (bytes)", data.talkers, ("src", "dst")),
            (axes[1][0], "Top services (bytes)", data.services, ("service",))):
        rows = _rows(series, cols)[::-1]
        ax.set_title(name)
        ax.barh([r[0] for r in rows], [r[1] for r in rows], color="tab:blue")
        for i, (_, n) in enumerate(rows):
            ax.text(n, i, " " + _bytes(n), va="center", fontsize="small")
        ax.tick_params(axis="y", labelsize="small")
        ax.margins(x=0.25)
    ax = axes[1][1]
    ax.set_title("Protocol mix (bytes)")
    mix = [(s.tags.get("proto", "?"), float(s.values[0][1] or 0)) for s in data.protocols
           if s.values]
    if mix:
        mix.sort(key=lambda m: -m[1])
        ax.pie([m[1] for m in mix], startangle=90, counterclock=False)
        # A legend, not slice labels: small protocols' labels would overlap.
        ax.legend([f"{p}  {_bytes(n)}" for p, n in mix], loc="center left",
                  bbox_to_anchor=(1.0, 0.5), fontsize="small")
    for ax in (a for row in axes for a in row):
        if not ax.has_data():
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_file:
        try:
            return Path(args.password_file).read_text().strip()
        except OSError as err:
            raise ReportError(f"cannot read {args.password_file}: {err.strerror}") from None
    return args.password


def run(args: argparse.Namespace) -> int:
    """Entry of the CLI subcommand; raises ReportError/InfluxError for one-line errors."""
    if args.rp != AUTO and not IDENTIFIER.match(args.rp):
        raise ReportError(f"--rp {args.rp!r} is not a retention policy name")
    since, until = parse_duration(args.since), parse_duration(args.until)
    if since <= until:
        raise ReportError("--since must reach further back than --until")
    now = int(time.time())
    start, end = now - since, now - until
    influx, recorded_site = connect(args)
    site = args.site or recorded_site
    rp = args.rp
    if rp == AUTO:
        rp = choose_rp(influx, start, end)
    data = collect(influx, site=site, start_s=start, end_s=end, rp=rp)
    if data.empty():
        where = f"site {site}" if site else "any site"
        raise ReportError(f"no data for {where} in {influx.database}.{rp} between "
                          f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} and "
                          f"{datetime.fromtimestamp(end, UTC):%H:%M} UTC")
    title = (f"sitevis — {site or 'all sites'} — "
             f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} to "
             f"{datetime.fromtimestamp(end, UTC):%H:%M} UTC ({rp})")
    draw(data, Path(args.output), title)
    print(args.output)
    return 0


__all__ = ["InfluxError", "ReportError", "run"]
