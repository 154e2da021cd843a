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

from sitevis import overview, retention
from sitevis.connection import connect
from sitevis.influx import Influx, InfluxError, Series
from sitevis.query import Query, QueryError, plain_name, regex_literal
from sitevis.retention import FALLBACK_RP, choose_rp  # choose_rp: tests import it here

# Same resolution floor as the dashboards: the collector interval, or the long RP's 5 min.
MIN_STEP = {"raw": 10, "long": 300}
POINTS = 240  # buckets across the time range, about what a Grafana panel asks for


class ReportError(Exception):
    pass


def step_seconds(range_s: int, rp: str) -> int:
    return max(MIN_STEP.get(rp, 10), math.ceil(range_s / POINTS))


def fill(template: str, *, site: str | None, start_ms: int, end_ms: int, step_s: int,
         rp: str) -> Query:
    """Grafana's interpolation of the overview's templates, for all boxes/interfaces."""
    # Numbers pass through int(); the site is escaped for the regex and the policy must be
    # a plain name: nothing else from outside reaches the text.
    values = {
        "timeFilter": f"time >= {int(start_ms)}ms AND time <= {int(end_ms)}ms",
        "__interval_ms": str(int(step_s) * 1000),
        "__interval": f"{int(step_s)}s",
        "site": regex_literal(site) if site else ".*",
        "box": ".*", "iface": ".*", "dir": ".*", "rp": plain_name(rp),
    }
    return Query(re.sub(r"\$(\w+)", lambda m: values[m[1]], template))


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
            rp: str, talkers_rp: str | None = None) -> Overview:
    """talkers_rp: where addresses are read (the long policy keeps none); default rp."""
    step = step_seconds(end_s - start_s, rp)

    def run(template: str, policy: str = rp) -> list[Series]:
        return influx.query(fill(template, site=site, start_ms=start_s * 1000,
                                 end_ms=end_s * 1000, step_s=step, rp=policy))

    return Overview(traffic=run(overview.BOX_BPS),
                    talkers=run(overview.TOP_TALKERS, talkers_rp or rp),
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


def run(args: argparse.Namespace) -> int:
    """Entry of the CLI subcommand; raises ReportError/InfluxError for one-line errors."""
    since, until = args.since.seconds, args.until.seconds  # checked by the CLI
    if since <= until:
        raise QueryError("--since must reach further back than --until")
    now = int(time.time())
    start, end = now - since, now - until
    influx, recorded_site = connect(args)
    site = args.site or recorded_site
    rp = retention.resolve(influx, args.rp, start, end) or FALLBACK_RP
    talkers_rp = retention.resolve_talkers(influx, args.rp, start) or rp
    data = collect(influx, site=site, start_s=start, end_s=end, rp=rp, talkers_rp=talkers_rp)
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


__all__ = ["FALLBACK_RP", "InfluxError", "ReportError", "choose_rp", "run"]
