"""Collector health: is every box seeing everything and delivering it?"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import common as c
from sitevis import overview as q

UID = "sitevis-collector-health"
BOX_FILTER = '"site" =~ /^$site$/ AND "box" =~ /^$box$/'


def per_box(select: str) -> str:
    """A self-metric of every chosen box per time bucket (raw RP: the long one keeps
    only traffic sums)."""
    return (f'SELECT {select} FROM "sitevis_collector" WHERE {BOX_FILTER} AND $timeFilter '
            'GROUP BY time($__interval), "box"')


COVERAGE = ('SELECT MIN("coverage") AS "coverage" FROM "iface" '
            f'WHERE {q.TRAFFIC_FILTER} AND $timeFilter '
            'GROUP BY time($__interval), "box", "iface", "dir"')
OVERFLOWS = per_box('SUM("overflow_events") AS "overflows"') + " fill(0)"
RINGBUF_LOST = per_box('SUM("ringbuf_lost") AS "lost"') + " fill(0)"
WRITE_ERRORS = per_box('SUM("write_errors_4xx") AS "4xx", SUM("write_errors_5xx") AS "5xx", '
                       'SUM("write_errors_conn") AS "connection"') + " fill(0)"
SPOOL = per_box('MAX("spool_bytes") AS "spool"')
BPF_NS = per_box('MEAN("bpf_ns_per_packet") AS "ns"')
FLOWS_EXPORTED = per_box('SUM("flows_exported") AS "flows"') + " fill(0)"
REFUSED = per_box('SUM("points_folded") AS "folded", SUM("points_rejected") AS "lost"') \
    + " fill(0)"
TALKERS = per_box('LAST("talkers_admitted") AS "talkers", '
                  'SUM("talker_admissions") AS "admissions"')
# One selector only: with two, InfluxDB 1.x stamps the row with the range's start
# instead of the point's own time, and the time is what this panel is about.
LAST_SEEN = ('SELECT LAST("interfaces_attached") AS "interfaces" FROM "sitevis_collector" '
             f'WHERE {BOX_FILTER} AND $timeFilter GROUP BY "box"')


def build() -> Dashboard:
    return (
        c.dashboard(UID, "sitevis / Collector health", ["health"],
                    retention=False)
        .with_row(Row("Seeing everything"))
        .with_panel(c.graph("Coverage (BPF / kernel packets)", "percentunit",
                            c.query(COVERAGE, "$tag_box $tag_iface $tag_dir"),
                            description="Below 100 %: packets the kernel counted that "
                                        "never passed the TC hook (e.g. "
                                        "PACKET_QDISC_BYPASS senders)."))
        .with_panel(c.graph("Flow table overflows", "short",
                            c.query(OVERFLOWS, "$tag_box"),
                            description="Packets counted in the overflow bucket because "
                                        "the flow table was full."))
        .with_panel(c.graph("Ring buffer losses", "short", c.query(RINGBUF_LOST, "$tag_box")))
        .with_panel(c.graph("BPF cost", "ns", c.query(BPF_NS, "$tag_box"),
                            description="ns per packet; reported only while "
                                        "kernel.bpf_stats_enabled=1."))
        .with_row(Row("Delivering it"))
        .with_panel(c.graph("Write errors", "short",
                            c.query(WRITE_ERRORS, "$tag_box $col")))
        .with_panel(c.graph("Spool size", "decbytes", c.query(SPOOL, "$tag_box"),
                            description="Undelivered intervals kept on disk."))
        .with_panel(c.graph("Flows exported", "short", c.query(FLOWS_EXPORTED, "$tag_box")))
        .with_panel(c.graph("Points InfluxDB refused", "short",
                            c.query(REFUSED, "$tag_box $col"),
                            description="folded: refused flow rows whose counts were "
                                        "added to another row (totals stay exact); lost: "
                                        "refused and not recoverable. Both should be 0."))
        .with_panel(c.graph("Series budget", "short", c.query(TALKERS, "$tag_box $col"),
                            description="Talkers kept with their addresses, and new "
                                        "ones admitted per interval."))
        .with_panel(c.grid("Last seen", c.query(LAST_SEEN, table_format=True),
                           description="Each box's newest report (time column)."))
    )
