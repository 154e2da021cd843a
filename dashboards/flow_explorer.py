"""Flow explorer: the flows of chosen boxes/interfaces, filtered by src, dst, service."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards import common as c
from sitevis import overview as q

UID = "sitevis-flow-explorer"
# Address text boxes match from the start (empty matches everything); addresses hold
# only [0-9a-f.:], harmless in a regex whether or not Grafana escapes a text box. Service
# names hold "/", so services are a multi-value variable, which Grafana always escapes.
FLOW_FILTER = (f'{q.TRAFFIC_FILTER} AND "src" =~ /^$src/ AND "dst" =~ /^$dst/ '
               'AND "service" =~ /^$service$/')
FLOWS = ('SELECT SUM("bytes") AS "bytes", SUM("packets") AS "packets", '
         'SUM("flows") AS "flows" FROM "$rp"."flow" '
         f'WHERE {FLOW_FILTER} AND $timeFilter '
         'GROUP BY "box", "iface", "dir", "proto", "src", "dst", "service"')
BY_SERVICE = ('SELECT SUM("bytes") * 8000 / $__interval_ms AS "bps" '
              f'FROM "$rp"."flow" WHERE {FLOW_FILTER} AND $timeFilter '
              'GROUP BY time($__interval), "service", "dir" fill(0)')


def build() -> Dashboard:
    return (
        c.dashboard(UID, "sitevis / Flow explorer", ["flows"])
        .with_variable(c.text_variable("src", "Source", "Address prefix, e.g. 10.1."))
        .with_variable(c.text_variable("dst", "Destination", "Address prefix"))
        .with_variable(c.tag_variable("service", "Service", measurement="flow"))
        .with_panel(c.graph("Matching traffic per service", "bps",
                            c.query(BY_SERVICE, "$tag_service $tag_dir"),
                            interval="$rp_interval",
                            width=24))
        .with_panel(c.grid("Flows", c.query(FLOWS, table_format=True), width=24,
                           height=14,
                           description="Totals per flow key over the time range. "
                                       "Addresses: the talkers each box's series budget "
                                       "keeps (others summed as `other` or a prefix "
                                       "name); none on ranges over 2 days (long policy)."))
    )
