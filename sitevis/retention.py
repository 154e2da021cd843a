"""Which retention policy serves a time range: the dashboards' choice, for report and top."""

from __future__ import annotations

import re

from sitevis import overview
from sitevis.influx import Influx, InfluxError
from sitevis.query import IDENTIFIER, Query, plain_name

AUTO = "auto"
FALLBACK_RP = "raw"


def rp_option(text: str) -> str:
    """--rp: 'auto' (choose like the dashboards) or a retention policy name."""
    return text if text == AUTO else plain_name(text)


def choose_rp(influx: Influx, start_s: int, end_s: int) -> str:
    """The retention policy for the range, as the dashboards choose it: the influxdb
    role's selector; raw where there is no selector (a monitor set up before it)."""
    return selected_rp(influx, start_s, end_s) or FALLBACK_RP


def selected_rp(influx: Influx, start_s: int, end_s: int) -> str | None:
    """The selector's policy for the range; None where the database has no selector."""
    bounds = {"__from": int(start_s) * 1000, "__to": int(end_s) * 1000}
    text = re.sub(r"\$\{(__from|__to)\}", lambda m: str(bounds[m[1]]), overview.rp_query("rp"))
    try:
        series = influx.query(Query(text))
    except InfluxError as err:
        if "not found" not in str(err):  # database/RP missing: no selector
            raise
        series = []
    for s in series:
        for row in s.values:
            value = row[s.columns.index("rp")]
            # The name comes from the database: it goes into queries only if it is one.
            if isinstance(value, str) and IDENTIFIER.fullmatch(value):
                return value
    return None


def resolve_talkers(influx: Influx, rp: str, start_s: int) -> str | None:
    """resolve() for views of addresses (talkers): only raw keeps them (the long policy
    keeps bounded tags), so 'auto' takes the finest policy that still holds the range's
    start, whatever the range's length."""
    return resolve(influx, rp, start_s, start_s + 1)


def resolve(influx: Influx, rp: str, start_s: int, end_s: int) -> str | None:
    """An explicit policy as given (checked), or the selector's choice for 'auto' (None:
    no selector, so the database's default policy)."""
    return selected_rp(influx, start_s, end_s) if rp_option(rp) == AUTO else rp
