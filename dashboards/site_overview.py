"""Site overview: what the site's boxes carry, who talks, which services, who is silent."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import piechart
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import common as c
from sitevis import overview as q
from sitevis import toplist

UID = "sitevis-site-overview"
SILENT_AFTER = ("5m", "15m", "1h", "6h")
AHEAD_RANGES = tuple(reversed(toplist.RANGES))      # 24h first: the default
BOX_FILTER = '"site" =~ /^$site$/ AND "box" =~ /^$box$/'

# Boxes whose newest report in the range is older than $silent: the inner query finds
# each box's last report, the outer time condition keeps those that stopped since.
SILENT_BOXES = (
    'SELECT "interfaces" FROM (SELECT LAST("interfaces_attached") AS "interfaces" '
    f'FROM "sitevis_collector" WHERE {BOX_FILTER} AND $timeFilter GROUP BY "box") '
    'WHERE time < now() - $silent GROUP BY "box"')
REPORTING_BOXES = (
    'SELECT COUNT("interfaces") AS "boxes" FROM (SELECT LAST("interfaces_attached") AS '
    f'"interfaces" FROM "sitevis_collector" WHERE {BOX_FILTER} AND time > now() - $silent '
    'GROUP BY "box")')

# Summing the flow points of a picked range costs InfluxDB every flow series in it: a
# busy site's day is tens of thousands of series, tens of seconds. The top lists the
# portal computes ahead (sitevis/toplist.py) are the overview's; the sums are a row away.
RANGE_ROW = "Over the time range: sums every flow series in it (slow over a day of a big site)"
AHEAD_NOTE = ("The {what} with the most bytes received (ingress: traffic between two "
              "boxes counts once) over the last $ahead (the `Top lists over` choice: 1h, "
              "6h or 24h), whatever the time picker says, per site: ranks 01 to 20 and "
              "`other` (the rest and the folded rows). The portal's health loop sums them "
              "ahead (a day's every 5 minutes, an hour's every 30 s): a few dozen points, "
              "fast at any site size; empty when the portal has not written one in 15 "
              "minutes.")


def build() -> Dashboard:
    step = "$rp_interval"
    return (
        c.dashboard(UID, "sitevis / Site overview", ["overview"])
        .with_variable(c.custom_variable("silent", "Silent after", SILENT_AFTER))
        .with_variable(c.custom_variable("ahead", "Top lists over", AHEAD_RANGES))
        .with_row(Row("Traffic"))
        .with_panel(c.graph("Traffic per box", "bps",
                            c.query(q.BOX_BPS, "$tag_box $tag_dir"), interval=step,
                            description="Bits per second per box and direction "
                                        "(ingress = in, egress = out), exact BPF totals."))
        .with_panel(c.graph("Packets per box", "pps",
                            c.query(q.BOX_PPS, "$tag_box $tag_dir"), interval=step))
        .with_panel(c.graph("Traffic per interface", "bps",
                            c.query(q.IFACE_BPS, "$tag_box $tag_iface $tag_dir"),
                            interval=step))
        .with_panel(c.graph("Packets per interface", "pps",
                            c.query(q.IFACE_PPS, "$tag_box $tag_iface $tag_dir"),
                            interval=step))
        .with_row(Row("Top lists, last $ahead (computed ahead by the portal)"))
        .with_panel(c.grid("Top talkers, last $ahead",
                           c.query(toplist.panel_query("talkers", "$ahead"),
                                   table_format=True),
                           description=AHEAD_NOTE.format(what="source/destination pairs"),
                           width=12, unit="decbytes"))
        .with_panel(c.grid("Top services, last $ahead",
                           c.query(toplist.panel_query("services", "$ahead"),
                                   table_format=True),
                           description=AHEAD_NOTE.format(what="services"),
                           width=12, unit="decbytes"))
        # Collapsed: Grafana runs a collapsed row's queries only when it is opened, so
        # the overview of a big site opens fast and these sums run when asked for.
        .with_row(Row(RANGE_ROW).collapsed(True)
                  .with_panel(c.grid("Top talkers", c.query(q.TOP_TALKERS, table_format=True),
                                     description=f"The {q.TOP_N} source/destination pairs "
                                                 "with the most bytes in the time range. "
                                                 "With Direction = All, traffic between "
                                                 "two boxes of the site counts on both "
                                                 "(sent and received): pick ingress to "
                                                 "count it once. Addresses are those of "
                                                 "the talkers each box's series budget "
                                                 "keeps; `other` (or a prefix name) sums "
                                                 "the rest. Ranges read from the long "
                                                 "policy (over 2 days) have no addresses.",
                                     width=8, unit="decbytes"))
                  .with_panel(c.grid("Top services",
                                     c.query(q.TOP_SERVICES, table_format=True),
                                     description="Server side of each connection: "
                                                 "<proto>/<port>.",
                                     width=8, unit="decbytes"))
                  .with_panel(piechart.Panel().title("Protocol mix").datasource(c.DATASOURCE)
                              .unit("decbytes").span(8).height(8)
                              .reduce_options(cb.ReduceDataOptions().calcs(["sum"])
                                              .values(False))
                              .with_target(c.query(q.PROTOCOL_MIX, "$tag_proto"))))
        .with_row(Row("Boxes"))
        .with_panel(c.grid("Silent boxes", c.query(SILENT_BOXES, table_format=True),
                           description="Boxes that reported in the time range but not in "
                                       "the last $silent (time = their last report).",
                           width=16, height=6))
        .with_panel(c.single("Boxes reporting in the last $silent",
                             c.query(REPORTING_BOXES), width=8, height=6))
    )
