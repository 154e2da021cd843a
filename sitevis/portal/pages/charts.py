"""Chart specs for plotly.js (drawn by static/pages/pages.js) and the same numbers as
table rows, so every chart's values can be read without the chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sitevis.portal.traffic.marks import Mark
from sitevis.portal.traffic.series import Series

UNITS = {"bits": ("bits_per_s", "bit/s"), "packets": ("packets_per_s", "pps")}


@dataclass
class Chart:
    """One chart: id, title, plotly data and layout, and its numbers as a table."""

    id: str
    title: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    marks: list[tuple[str, str]] = field(default_factory=list)   # (time, what): rollouts

    @property
    def spec(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _layout(unit: str, *, stacked: bool = False) -> dict[str, Any]:
    return {
        "height": 300, "margin": {"l": 60, "r": 10, "t": 10, "b": 40},
        "xaxis": {"type": "date", "title": {"text": "UTC"}},
        "yaxis": {"title": {"text": unit}, "tickformat": "~s", "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.25},
        "hovermode": "x unified" if stacked else "closest",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
    }


def time_chart(chart_id: str, title: str, lines: list[tuple[str, list[int], list[float]]],
               unit: str, *, stacked: bool = False, sign: dict[str, int] | None = None,
               marks: list[Mark] | None = None) -> Chart:
    """Lines (name, times ms, values); stacked as areas. `sign` draws some lines below the
    axis (out mirrored under in); the table keeps the true values. `marks` (rollouts) are
    dotted vertical lines with their text, and listed under the chart."""
    data = []
    for name, times, values in lines:
        factor = (sign or {}).get(name, 1)
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "lines", "name": name, "x": [_when(t) for t in times],
            "y": [v * factor for v in values], "hovertemplate": f"%{{y:.3~s}} {unit}"}
        if stacked:
            trace["stackgroup"] = "neg" if factor < 0 else "pos"
        data.append(trace)
    layout = _layout(unit, stacked=stacked)
    all_times = sorted({t for _, times, _ in lines for t in times})
    by_name = [dict(zip(times, values, strict=True)) for _, times, values in lines]
    rows = [[_when(t), *[round(m.get(t, 0.0), 3) for m in by_name]] for t in all_times]
    marks = marks or []
    if marks:
        layout["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": _when(m.time_ms),
                             "x1": _when(m.time_ms), "y0": 0, "y1": 1,
                             "line": {"dash": "dot", "width": 1, "color": "#7a3eb1"}}
                            for m in marks]
        layout["annotations"] = [{"x": _when(m.time_ms), "xref": "x", "yref": "paper",
                                  "y": 1, "yanchor": "bottom", "showarrow": False,
                                  "text": m.text, "textangle": -90, "xanchor": "right",
                                  "font": {"size": 10, "color": "#7a3eb1"}} for m in marks]
    return Chart(chart_id, title, data, layout, ["time (UTC)", *[n for n, _, _ in lines]],
                 rows, [(_when(m.time_ms), m.text) for m in marks])


def bar_chart(chart_id: str, title: str, bars: list[tuple[str, float]], unit: str) -> Chart:
    """Horizontal bars, largest on top."""
    names = [n for n, _ in bars][::-1]
    values = [v for _, v in bars][::-1]
    layout = {**_layout(unit), "height": max(160, 28 * len(bars) + 60),
              "xaxis": {"title": {"text": unit}, "tickformat": "~s"},
              "yaxis": {"automargin": True}, "margin": {"l": 10, "r": 10, "t": 10, "b": 40}}
    data = [{"type": "bar", "orientation": "h", "y": names, "x": values,
             "hovertemplate": f"%{{x:.3~s}} {unit}<extra></extra>"}]
    return Chart(chart_id, title, data, layout, ["name", unit], [[n, v] for n, v in bars])


def label(key: dict[str, str]) -> str:
    """A row's key as one line: talkers as src → dst, absent tags (non-IP) as '-'."""
    return " → ".join(v or "-" for v in key.values())


def values(s: Series, unit: str) -> list[float]:
    field_name, _ = UNITS[unit]
    return list(getattr(s, field_name))
