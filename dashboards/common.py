"""Pieces every sitevis dashboard shares: the datasource, variables, panel shapes."""

from __future__ import annotations

from typing import Self

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    AnnotationEventFieldMapping,
    AnnotationQuery,
    CustomVariable,
    Dashboard,
    QueryVariable,
    TextBoxVariable,
)
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.common import DataSourceRef

from dashboards.influxql import DATASOURCE_TYPE, Query
from sitevis import overview as q

# The datasource roles/grafana provisions (grafana_datasource_uid).
DATASOURCE_UID = "sitevis-influxdb"
DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

# The retention policy a traffic panel reads follows the time range: two query
# variables over the influxdb role's selector (sitevis.overview.rp_query), refreshed on
# every time range change. "$rp" names the policy in FROM; "$rp_interval", its
# resolution, is the panel's min interval, so a downsampled query never groups finer
# than its 5 min points (which would turn 5 min sums into 30x rate spikes).
RP_SELECTOR, RP_SELECTOR_WHERE, rp_query = q.RP_SELECTOR, q.RP_SELECTOR_WHERE, q.rp_query

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


class _DerivedVariable(QueryVariable):
    """A query variable with skipUrlSync, which the model has and the SDK's builder lacks:
    a value derived from the time range has no place in a shared link."""

    def skip_url_sync(self, skip: bool) -> Self:
        self._internal.skip_url_sync = skip
        return self


def _selector_variable(name: str, field: str) -> QueryVariable:
    query = rp_query(field)
    return (_DerivedVariable(name).datasource(DATASOURCE).query(query).definition(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).allow_custom_value(False)
            .skip_url_sync(True))


def rp_variable() -> QueryVariable:
    """The retention policy the traffic panels read: one value, shown, not a choice."""
    return (_selector_variable("rp", "rp").label("Retention")
            .description("Follows the time range: raw (every collector interval) for "
                         "ranges up to 2 days within the last 30 days, long (5-minute "
                         "sums, 400 days) otherwise (the influxdb role's defaults)."))


def rp_interval_variable() -> QueryVariable:
    """The resolution of $rp (e.g. 10s, 5m): the min interval of the panels reading it."""
    return (_selector_variable("rp_interval", "interval").label("Resolution")
            .hide(dm.VariableHide.HIDE_VARIABLE))


def custom_variable(name: str, label: str, values: tuple[str, ...]) -> CustomVariable:
    return (CustomVariable(name).label(label).values(",".join(values))
            .current(dm.VariableOption(selected=True, text=values[0], value=values[0])))


def text_variable(name: str, label: str, description: str) -> TextBoxVariable:
    return TextBoxVariable(name).label(label).description(description).default_value("")


def dashboard(uid: str, title: str, tags: list[str], *, one_box: bool = False,
              retention: bool = True) -> Dashboard:
    """A sitevis dashboard with its site/box/iface/dir variables and, for panels that
    read traffic, the retention policy variables that follow the time range."""
    board = (Dashboard(title).uid(uid).tags(["sitevis", *tags]).editable()
             .time("now-6h", "now").refresh("30s").timezone("browser")
             .tooltip(dm.DashboardCursorSync.CROSSHAIR)
             .with_variable(tag_variable("site", "Site", multi=False))
             .with_variable(tag_variable("box", "Box", multi=not one_box))
             .with_variable(tag_variable("iface", "Interface"))
             .with_variable(tag_variable("dir", "Direction")))
    if retention:
        board = board.with_variable(rp_variable()).with_variable(rp_interval_variable())
    return board.annotation(rollouts())


def rollouts() -> AnnotationQuery:
    """The portal's rollouts of the chosen site as annotations (start and end of each)."""
    def field(name: str) -> AnnotationEventFieldMapping:
        return AnnotationEventFieldMapping().source(dm.AnnotationEventFieldSource.FIELD) \
            .value(name)

    return (AnnotationQuery().name("Rollouts").datasource(DATASOURCE).enable(True)
            .icon_color("purple")
            .target(query(q.ROLLOUTS, table_format=True, ref_id="Anno"))
            .mappings({"text": field("launched_by"), "tags": field("outcome"),
                       "title": field("playbook")}))


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
