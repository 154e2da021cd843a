"""Flow explorer: filters, a stacked time series by the chosen grouping, the top-N under
it with an "Other" row, and the same table as CSV; the whole state is in the URL."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

from sitevis.influx import InfluxError
from sitevis.portal.pages import access, charts, forms
from sitevis.portal.traffic import flowseries, source, top
from sitevis.portal.traffic.flowseries import FlowWhere
from sitevis.portal.traffic.timerange import TimeRange
from sitevis.query import QueryError

DEFAULTS = forms.ExplorerForm.defaults


@dataclass
class TableRow:
    key: dict[str, str]
    bytes: int
    packets: int
    share: float
    bits_per_s: float
    other: bool = False


def _params(form: forms.ExplorerForm) -> dict[str, Any]:
    return {k: form.cleaned_data.get(k) or v for k, v in DEFAULTS.items()}


def _where(request: HttpRequest, data: dict[str, Any], direction: str) -> FlowWhere | None:
    where = access.where(request, data.get("site"))
    if where is None:
        return None
    for field, tag in (("box", "box"), ("interface", "iface"), ("proto", "proto"),
                       ("service", "service")):
        if data.get(field):
            where.tag(tag, data[field])
    if direction != "any":
        where.tag("dir", direction)
    if data.get("addr"):
        where.either(("src", "dst"), data["addr"])
    return where


def table(result: top.TopResult, rng: TimeRange) -> list[TableRow]:
    total = result.total_bytes or 1
    rows = [TableRow(r.key, r.bytes, r.packets, r.bytes / total, r.bytes * 8 / rng.seconds)
            for r in result.rows]
    if result.other.bytes or result.other.packets:
        rows.append(TableRow({}, result.other.bytes, result.other.packets,
                             result.other.bytes / total,
                             result.other.bytes * 8 / rng.seconds, other=True))
    return rows


def explore(request: HttpRequest, form: forms.ExplorerForm) -> dict[str, Any]:
    """The top-N (the API's flows/top) and the stacked series of its rows plus Other."""
    p, rng = _params(form), form.range
    data = form.cleaned_data
    where = _where(request, data, p["dir"])
    if where is None:
        return {"rows": [], "charts": [], "keys": list(top.GROUPINGS[p["by"]])}
    db = source.influx()
    result = top.top(db, p["by"], rng, where, int(p["limit"]))
    again = _where(request, data, p["dir"])
    assert again is not None
    rp, step, found = flowseries.by_grouping(db, p["by"], rng, again)
    shown = [r.key for r in result.rows]
    field_name, unit = charts.UNITS[p["unit"]]
    lines = []
    for key in shown:
        match = next((s for s in found if s.key == key), None)
        if match is not None:
            lines.append((charts.label(key), match.times_ms, list(getattr(match, field_name))))
    rest = [s for s in found if s.key not in shown]
    if rest:
        times = rest[0].times_ms
        summed = [sum(vals) for vals in zip(*(getattr(s, field_name) for s in rest),
                                            strict=True)]
        lines.append(("Other", times, summed))
    chart = charts.time_chart("flows", f"Traffic by {p['by']}, {unit}", lines, unit,
                              stacked=True)
    return {"rows": table(result, rng), "charts": [chart], "rp": rp, "step": step.text,
            "keys": list(top.GROUPINGS[p["by"]]), "total_bytes": result.total_bytes}


@access.page
def flows(request: HttpRequest) -> HttpResponse:
    form = forms.ExplorerForm(request.GET)
    context: dict[str, Any] = {"form": form, "rows": [], "charts": [],
                               "sites": access.visible_sites(request),
                               "boxes": sorted({b.name for b in access.visible_boxes(request)})}
    if form.is_valid():
        context["params"] = _params(form)
        context["range"] = form.range
        try:
            context.update(explore(request, form))
        except source.RangeRefused as err:
            context["error"] = str(err)
        except (InfluxError, QueryError) as err:
            context["error"] = str(err)
    context["csv_query"] = request.GET.urlencode()
    return access.render_page(request, "pages/flows.html", context, "pages/flows_live.html")


@access.page
def flows_csv(request: HttpRequest) -> HttpResponse:
    """The table the explorer shows for the same URL parameters, as CSV (raw numbers)."""
    form = forms.ExplorerForm(request.GET)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
    try:
        found = explore(request, form)
    except (InfluxError, QueryError) as err:
        return HttpResponse(str(err), status=400, content_type="text/plain")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="sitevis-flows.csv"'
    out = csv.writer(response)
    out.writerow([*found["keys"], "bytes", "packets", "share", "bits_per_s"])
    for row in found["rows"]:
        key = ["Other", *[""] * (len(found["keys"]) - 1)] if row.other else [
            row.key.get(k, "") for k in found["keys"]]
        out.writerow([*key, row.bytes, row.packets, f"{row.share:.4f}",
                      f"{row.bits_per_s:.1f}"])
    return response
