"""`sitevis-collector top`: a live table of the busiest flows, like iftop."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sitevis_collector.agent import Agent
from sitevis_collector.config import Config
from sitevis_collector.export.aggregate import flow_points
from sitevis_collector.export.budget import SeriesBudget


def human_rate(value: float, unit: str) -> str:
    for prefix in ("", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:6.1f} {prefix}{unit}"
        value /= 1000
    return f"{value:6.1f} T{unit}"


def flow_table(agent: Agent, seconds: float, rows: int) -> Table:
    result, _ = agent.drain()
    # Nothing is stored here, so no series budget: every talker keeps its addresses.
    everyone = SeriesBudget(replace(agent.cfg.series, talkers=len(result.flows)),
                            agent.cfg.interval)
    points = flow_points(result, agent.cfg, time.time_ns(), everyone)
    points.sort(key=lambda p: p.fields["bytes"], reverse=True)
    table = Table(title=f"{agent.cfg.box}: top flows over {seconds:.1f} s "
                        f"({len(points)} rows, {len(agent.attached)} interfaces)",
                  title_justify="left")
    for name, justify in (("iface", "left"), ("dir", "left"), ("src", "left"),
                          ("dst", "left"), ("service", "left"), ("bits/s", "right"),
                          ("packets/s", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p in points[:rows]:
        t = p.tags
        size, packets = int(p.fields["bytes"]), int(p.fields["packets"])
        table.add_row(t["iface"], t["dir"], t["src"], t["dst"], t["service"],
                      human_rate(8 * size / seconds, "b/s"),
                      human_rate(packets / seconds, "p/s"))
    return table


def run_top(cfg: Config, refresh: float, rows: int, stop: threading.Event,
            iterations: int = 0) -> int:
    console = Console()
    agent = Agent(cfg)
    try:
        agent.start()
        with Live(console=console, auto_refresh=False) as live:
            shown = 0
            last = time.monotonic()
            while not stop.wait(refresh):
                now = time.monotonic()
                live.update(flow_table(agent, now - last, rows), refresh=True)
                last = now
                shown += 1
                if iterations and shown >= iterations:
                    break
    finally:
        agent.close()
    return 0
