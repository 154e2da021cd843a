"""Box detail: one box's interfaces, flows, TCP handshakes and sampled packets."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import common as c
from sitevis import overview as q

UID = "sitevis-box-detail"
# TCP flag bits as the collector ORs them into each flow row's tcp_flags.
SYN, RST = 0x02, 0x04
# Flow rows per collector interval (10 s, the datasource's min interval) on average.
ACTIVE_FLOWS = ('SELECT SUM("flows") * 10000 / $__interval_ms AS "flows" '
                f'FROM "$rp"."flow" WHERE {q.TRAFFIC_FILTER} AND $timeFilter '
                'GROUP BY time($__interval), "iface", "dir" fill(0)')
PACKETS = ('SELECT "iface", "dir", "proto", "src", "sport", "dst", "dport", "length", '
           '"ttl", "tcp_flags", "sample_rate" FROM "packet" '
           f'WHERE {q.TRAFFIC_FILTER} AND $timeFilter ORDER BY time DESC LIMIT 200')


def tcp_flag_rate(bit: int, name: str) -> str:
    """Connections per second whose flow row carries the flag (raw only: the long RP
    keeps no tcp_flags)."""
    return (f'SELECT SUM("flows") * 1000 / $__interval_ms AS "{name}" FROM "flow" '
            f'WHERE {q.TRAFFIC_FILTER} AND "proto" = \'tcp\' AND "tcp_flags" & {bit} = {bit} '
            'AND $timeFilter GROUP BY time($__interval), "iface", "dir" fill(0)')


def build() -> Dashboard:
    step = "$rp_interval"
    return (
        c.dashboard(UID, "sitevis / Box detail", ["box"], one_box=True)
        .with_row(Row("Interfaces"))
        .with_panel(c.graph("Interface traffic", "bps",
                            c.query(q.IFACE_BPS, "$tag_iface $tag_dir"), interval=step))
        .with_panel(c.graph("Interface packets", "pps",
                            c.query(q.IFACE_PPS, "$tag_iface $tag_dir"), interval=step))
        .with_row(Row("Flows"))
        .with_panel(c.graph("Active flows", "short",
                            c.query(ACTIVE_FLOWS, "$tag_iface $tag_dir"), interval=step,
                            description="Connections seen per 10 s collector interval."))
        .with_panel(c.graph("TCP SYN / RST", "cps",
                            c.query(tcp_flag_rate(SYN, "syn"), "SYN $tag_iface $tag_dir"),
                            c.query(tcp_flag_rate(RST, "rst"), "RST $tag_iface $tag_dir",
                                    ref_id="B"),
                            description="Connections per second that carried a SYN "
                                        "(attempts) or a RST (refusals, aborts)."))
        .with_row(Row("Sampled packets"))
        .with_panel(c.grid("Sampled packets", c.query(PACKETS, table_format=True),
                           description="Packet headers sampled 1 in sample_rate "
                                       "(newest first).", width=24, height=10))
    )
