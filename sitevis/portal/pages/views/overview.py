"""Site overview: every box with its health and traffic, top talkers, services and
protocols, the site's traffic over time."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from sitevis.influx import InfluxError
from sitevis.portal.accounts import roles
from sitevis.portal.health.views import unresolved_per_box
from sitevis.portal.pages import access, charts, forms
from sitevis.portal.pages.views.common import Totals, interval_ms, late
from sitevis.portal.traffic import ahead, health, marks, series, sitehealth, source, top
from sitevis.query import QueryError

# Each top list scans the range's flow points (millions for a big site's hour): they load
# after the page, side by side, so the boxes' health is on screen without waiting; those
# of a preset range come computed ahead (ahead.py), for the user's sites.
TOPS = ahead.TOPS
CHART_BOXES = 8   # the busiest boxes drawn one by one, the rest as "other boxes"


def _way(s: series.Series) -> str:
    return "in" if s.key.get("dir") == "ingress" else "out"


def _chart_lines(busy: list[series.Series], site: list[series.Series]
                 ) -> list[tuple[str, list[int], list[float]]]:
    """In and out per busy box, and the other boxes as the site's total minus theirs:
    100 boxes stay a readable chart (and a small table); the boxes table has every box's
    numbers."""
    lines = [(f"{s.key.get('box', '')} {_way(s)}", s.times_ms, s.bits_per_s) for s in busy]
    for total in site:
        rest = list(total.bits_per_s)
        for s in busy:
            if _way(s) == _way(total):
                theirs = dict(zip(s.times_ms, s.bits_per_s, strict=True))
                # Rounded: float sums must not leave an "other" line of dust.
                rest = [max(0.0, round(v - theirs.get(t, 0.0), 6))
                        for t, v in zip(total.times_ms, rest, strict=True)]
        if any(rest) or not busy:
            lines.append((f"other boxes {_way(total)}", total.times_ms, rest))
    return lines


def _top(request: HttpRequest, by: str, form: forms.RangeForm
         ) -> tuple[top.TopResult, ahead.Computed | None]:
    """The top list, and when it was computed ahead, that computation (else None)."""
    preset = ahead.preset_of(form.cleaned_data)
    found = (ahead.newest(by, preset, settings.CONFIG.overview_refresh_seconds)
             if preset else None)
    if found is not None:
        sites = roles.allowed_site_names(request.user)
        return ahead.ranked(found, "ingress", sites, ahead.LIMIT), found
    where = access.where(request)
    assert where is not None
    try:
        return ahead.overview_top(source.influx(), by, form.range, where), None
    except source.RangeRefused:
        return top.TopResult(None), None  # talkers older than raw: the table says none


def _totals(sums: tuple[int, int], rng: Any) -> Totals:
    nbytes, packets = sums
    return Totals(nbytes, packets, nbytes * 8 / rng.seconds, packets / rng.seconds)


@access.page
def overview(request: HttpRequest) -> HttpResponse:
    form = forms.RangeForm(request.GET)
    context: dict[str, Any] = {"form": form, "boxes": [], "charts": [], "tops": []}
    if form.is_valid() and access.where(request) is not None:
        try:
            _fill(request, form, context)
        except (InfluxError, QueryError) as err:
            context["error"] = str(err)
    return access.render_page(request, "pages/overview.html", context,
                              "pages/overview_live.html")


def _fill(request: HttpRequest, form: forms.RangeForm, context: dict[str, Any]) -> None:
    rng = form.range
    db = source.influx()

    visible = access.where(request)   # the user's sites: looked up once per page
    assert visible is not None

    def scope() -> Any:
        return visible.copy()          # each query extends its own copy

    seen = {(r["site"], r["box"]): r["last_seen_ms"] for r in health.freshness(db, scope())}
    healths = sitehealth.per_box(db, scope, rng)
    # Every box's totals in one statement without time buckets; time series only for the
    # busiest boxes and the site as a whole (InfluxDB's cost is in the buckets it makes).
    moved = {key: _totals(sums, rng) for key, sums in
             series.totals(db, rng, scope(), "box").items()}
    weight: dict[str, int] = {}
    for (box, _), moved_by in moved.items():
        weight[box] = weight.get(box, 0) + moved_by.bytes
    busiest = sorted(weight, key=lambda b: (-weight[b], b))[:CHART_BOXES]
    busy: list[series.Series] = []
    if busiest:
        _, _, busy = series.traffic(db, rng, scope().tag_in("box", busiest), "box")
    rp, step, whole_site = series.traffic(db, rng, scope(), "site")
    now_ms = time.time() * 1000
    known = {(b.site.name, b.name) for b in access.visible_boxes(request)}
    issues = unresolved_per_box(request.user)
    rows = []
    for site, box in sorted(known | set(seen) | set(healths)):
        found_health = healths.get((site, box), {})
        last = seen.get((site, box))
        every = interval_ms(found_health, last, rng)
        rows.append({
            "site": site, "box": box, "health": found_health, "last_seen_ms": last,
            "age_s": None if last is None else (now_ms - last) / 1000,
            "interval_ms": every, "late": late(last, every, now_ms),
            "unhealthy": any(found_health.get(k) for k in (
                "overflow_events", "ringbuf_lost", "write_errors", "unaccounted")),
            "in": moved.get((box, "ingress")), "out": moved.get((box, "egress")),
            "issues": issues.get((site, box), 0)})
    lines = _chart_lines(busy, whole_site)
    sign = {name: -1 for name, _, _ in lines if name.endswith(" out")}
    context["boxes"] = rows
    context["late"] = sum(1 for r in rows if r["late"])
    context["charts"] = [charts.time_chart(
        "site-traffic", "Traffic per box (in above the axis, out below)", lines, "bit/s",
        stacked=True, sign=sign, marks=marks.rollouts(db, rng, scope()))]
    context["tops"] = [{"by": by, "title": title} for by, title in TOPS.items()]
    context.update(rp=rp, step=step.text, range=rng)


@access.page
def top_panel(request: HttpRequest, by: str) -> HttpResponse:
    """One of the overview's top lists (loaded by htmx after the page)."""
    if by not in TOPS:
        raise Http404(by)
    form = forms.RangeForm(request.GET)
    context: dict[str, Any] = {"form": form, "t": {"by": by, "title": TOPS[by]},
                               "every": settings.CONFIG.overview_refresh_seconds}
    if form.is_valid() and access.where(request) is not None:
        try:
            result, computed = _top(request, by, form)
        except (InfluxError, QueryError) as err:
            context["error"] = str(err)
        else:
            seconds = (form.range.seconds if computed is None
                       else (computed.end_ns - computed.start_ns) / 1e9)
            bars = [(charts.label(r.key), r.bytes * 8 / seconds) for r in result.rows]
            if result.other.bytes:
                bars.append(("Other", result.other.bytes * 8 / seconds))
            if computed is not None:
                context["every"] = ahead.period_s(computed.since, context["every"])
            context["t"].update(result=result, computed=computed, chart=charts.bar_chart(
                f"top-{by}", TOPS[by], bars, "bit/s"))
    return access.render_page(request, "pages/_top_panel.html", context)
