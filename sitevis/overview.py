"""InfluxQL of the site overview's main panels, in Grafana's template syntax.

One definition serves both the Grafana dashboard (dashboards/site_overview.py) and
`sitevis report`, so the PNG shows exactly what the dashboard shows. Templates use
Grafana's macros ($timeFilter, $__interval, $__interval_ms) and the dashboard variables
$site, $box, $iface, $dir (regex context) and $rp (the retention policy).
"""

from __future__ import annotations

# Tag filters every traffic panel shares; multi-value variables expand to (a|b) here.
TRAFFIC_FILTER = ('"site" =~ /^$site$/ AND "box" =~ /^$box$/ AND "iface" =~ /^$iface$/ '
                  'AND "dir" =~ /^$dir$/')
TOP_N = 10

# Which retention policy serves a time range: roles/influxdb writes a selector, one point
# per policy (vars/main.yml, _influxdb_rp_selector). A point's time is the epoch plus the
# age of the oldest range start its policy serves; max_range_ms is the longest range it
# serves; the first point that serves both wins. ${__from}/${__to} are epoch ms (Grafana
# fills them in query variables; `sitevis report` does the same).
RP_SELECTOR = '"sitevis_meta"."sitevis_rp"'
RP_SELECTOR_WHERE = 'time >= now() - ${__from}ms AND "max_range_ms" >= ${__to} - ${__from}'


def rp_query(field: str) -> str:
    """The selector's `field` (rp or interval) for the time range ${__from}..${__to}."""
    return f'SELECT "{field}" FROM {RP_SELECTOR} WHERE {RP_SELECTOR_WHERE} LIMIT 1'


def rate(measurement: str, field: str, group_by: tuple[str, ...], scale: int = 1) -> str:
    """Per-second rate of a per-interval counter: the bucket's sum over its length.

    Dividing by $__interval_ms keeps the unit right for any bucket length, raw (10 s)
    or downsampled (5 min sums); `scale` turns bytes into bits (8).
    """
    tags = "".join(f', "{tag}"' for tag in group_by)
    return (f'SELECT SUM("{field}") * {scale * 1000} / $__interval_ms AS "{field}" '
            f'FROM "$rp"."{measurement}" WHERE {TRAFFIC_FILTER} AND $timeFilter '
            f'GROUP BY time($__interval){tags} fill(0)')


def top(field: str, tags: tuple[str, ...], n: int = TOP_N) -> str:
    """The n largest totals of `field` per tag combination over the time range."""
    quoted = ", ".join(f'"{tag}"' for tag in tags)
    return (f'SELECT TOP("{field}", {quoted}, {n}) AS "{field}" FROM '
            f'(SELECT SUM("{field}") AS "{field}" FROM "$rp"."flow" '
            f'WHERE {TRAFFIC_FILTER} AND $timeFilter GROUP BY {quoted})')


BOX_BPS = rate("iface", "bytes", ("box", "dir"), scale=8)
BOX_PPS = rate("iface", "packets", ("box", "dir"))
IFACE_BPS = rate("iface", "bytes", ("box", "iface", "dir"), scale=8)
IFACE_PPS = rate("iface", "packets", ("box", "iface", "dir"))
TOP_TALKERS = top("bytes", ("src", "dst"))
TOP_SERVICES = top("bytes", ("service",))
# The portal's rollouts (docs/schema.md, `rollout`): a start and an end point each, as
# dashboard annotations: who launched which playbook, and how it ended.
ROLLOUTS = ('SELECT "launched_by", "playbook", "outcome", "rollout_id" FROM "rollout" '
            'WHERE "site" =~ /^$site$/ AND $timeFilter')
PROTOCOL_MIX = ('SELECT SUM("bytes") AS "bytes" FROM "$rp"."flow" '
                f'WHERE {TRAFFIC_FILTER} AND $timeFilter GROUP BY "proto"')
