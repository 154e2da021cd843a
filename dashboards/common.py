"""Pieces every sitevis dashboard shares: the datasource, variables, panel shapes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    Dashboard,
    QueryVariable,
    TextBoxVariable,
)
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import DataSourceRef

from dashboards.influxql import DATASOURCE_TYPE, Query

# The datasource roles/grafana provisions (grafana_datasource_uid).
DATASOURCE_UID = "sitevis-influxdb"
DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

# Retention policies of roles/influxdb: raw (collector interval, 10 s) and long (CQ sums
# per 5 min). Shown by name, valued by resolution: "${rp:text}" names the RP in FROM,
# "$rp" is each switchable panel's min interval, so a downsampled query never groups
# finer than its 5 min points (which would turn 5 min sums into 30x rate spikes).
RP_OPTIONS = (("raw", "10s"), ("long", "5m"))

TAG_VARIABLES = ("site", "box", "iface", "dir")


def _tag_values(measurement: str, key: str, parents: tuple[str, ...]) -> str:
    where = " AND ".join(f'"{p}" =~ /^${p}$/' for p in parents)
    return (f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'
            + (f" WHERE {where}" if where else ""))


def tag_variable(key: str, label: str, *, multi: bool = True,
                 measurement: str = "iface") -> QueryVariable:
    """A variable listing a tag's values, narrowed by the variables before it.

    Multi-valued ones are always used as =~ /^$var$/: Grafana then regex-escapes each
    value and joins them as (a|b), so "All" needs no allValue.
    """
    parents = (TAG_VARIABLES[:TAG_VARIABLES.index(key)] if key in TAG_VARIABLES
               else TAG_VARIABLES[:3])
    query = _tag_values(measurement, key, parents)
    var = (QueryVariable(key).label(label).datasource(DATASOURCE).query(query)
           .definition(query).refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
           .sort(dm.VariableSort.NATURAL_ASC))
    if multi:
        var = var.multi(True).include_all(True)
    return var


def rp_variable() -> CustomVariable:
    values = ",".join(f"{name} : {step}" for name, step in RP_OPTIONS)
    name, step = RP_OPTIONS[0]
    return (CustomVariable("rp").label("Retention").values(values)
            .description("raw: every collector interval (30 days); long: 5-minute sums "
                         "(400 days). Pick long for ranges beyond a few days.")
            .current(dm.VariableOption(selected=True, text=name, value=step)))


def custom_variable(name: str, label: str, values: tuple[str, ...]) -> CustomVariable:
    return (CustomVariable(name).label(label).values(",".join(values))
            .current(dm.VariableOption(selected=True, text=values[0], value=values[0])))


def text_variable(name: str, label: str, description: str) -> TextBoxVariable:
    return TextBoxVariable(name).label(label).description(description).default_value("")


def dashboard(uid: str, title: str, tags: list[str]) -> Dashboard:
    return (Dashboard(title).uid(uid).tags(["sitevis", *tags]).editable()
            .time("now-6h", "now").refresh("30s").timezone("browser")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR))


def query(text: str, alias: str | None = None, table_format: bool = False,
          ref_id: str = "A") -> Query:
    q = Query(text).ref_id(ref_id).datasource(DATASOURCE)
    if alias:
        q = q.alias(alias)
    return q.result_format("table" if table_format else "time_series")


def graph(title: str, unit: str, *targets: Query, interval: str | None = None,
          description: str = "", width: int = 12, height: int = 8) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).min(0).fill_opacity(10).span(width).height(height)
             .legend(cb.VizLegendOptions().show_legend(True)
                     .display_mode(cm.LegendDisplayMode.TABLE)
                     .placement(cm.LegendPlacement.BOTTOM).calcs(["mean", "max"])))
    if interval:
        panel = panel.interval(interval)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def grid(title: str, *targets: Query, description: str = "", width: int = 12,
         height: int = 8, unit: str | None = None) -> table.Panel:
    panel = (table.Panel().title(title).description(description).datasource(DATASOURCE)
             .span(width).height(height))
    if unit:
        panel = panel.unit(unit)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single(title: str, target: Query, unit: str = "none", calc: str = "lastNotNull",
           description: str = "", width: int = 6, height: int = 4) -> stat.Panel:
    return (stat.Panel().title(title).description(description).datasource(DATASOURCE)
            .unit(unit).span(width).height(height).with_target(target)
            .reduce_options(cb.ReduceDataOptions().calcs([calc]).values(False)))
