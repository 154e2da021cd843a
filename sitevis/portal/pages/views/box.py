"""A box: its interfaces' bits/s and packets/s in and out, its health now and over
time, its busiest flows, what the inventory knows of it."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from sitevis.influx import InfluxError
from sitevis.portal.inventory.models import Box
from sitevis.portal.pages import access, charts, forms
from sitevis.portal.pages.views.common import totals
from sitevis.portal.traffic import health, marks, series, sitehealth, source, top
from sitevis.query import QueryError, duration

HEALTH_WINDOW = "5m"        # as the API's boxes/{id}/health default
COUNTERS = ("overflow_events", "ringbuf_lost", "write_errors", "samples_rate_limited",
            "unaccounted", "filters_restored")


@access.page
def box(request: HttpRequest, site: str, name: str) -> HttpResponse:
    form = forms.RangeForm(request.GET)
    access.where(request, site)  # 403 for another site's box
    context: dict[str, Any] = {
        "form": form, "site": site, "box": name, "charts": [],
        "inventory": Box.objects.filter(site__name=site, name=name).first()}
    if form.is_valid():
        try:
            _fill(request, form, context)
        except (InfluxError, QueryError) as err:
            context["error"] = str(err)
    return access.render_page(request, "pages/box.html", context, "pages/box_live.html")


def _where(request: HttpRequest, site: str, name: str) -> Any:
    where = access.where(request, site)
    assert where is not None
    return where.tag("box", name)


def _fill(request: HttpRequest, form: forms.RangeForm, context: dict[str, Any]) -> None:
    rng, site, name = form.range, context["site"], context["box"]
    db = source.influx()
    rp, step, found = series.traffic(db, rng, _where(request, site, name), "interface")
    step_s = step.ns / 1e9
    names = [f"{s.key.get('iface', '')} {'in' if s.key.get('dir') == 'ingress' else 'out'}"
             for s in found]
    sign = {n: -1 for n in names if n.endswith(" out")}
    site_scope = access.where(request, site)
    assert site_scope is not None
    rollouts = marks.rollouts(db, rng, site_scope)   # of the box's site (no box tag)
    context["charts"] += [
        charts.time_chart("box-bits", "Bits per second by interface (out below the axis)",
                          [(n, s.times_ms, s.bits_per_s) for n, s in zip(names, found,
                                                                         strict=True)],
                          "bit/s", sign=sign, marks=rollouts),
        charts.time_chart("box-packets", "Packets per second by interface",
                          [(n, s.times_ms, s.packets_per_s) for n, s in zip(names, found,
                                                                            strict=True)],
                          "pps", sign=sign)]
    context["interfaces"] = [
        {"iface": s.key.get("iface", ""), "dir": s.key.get("dir", ""),
         "totals": totals(s, step_s, rng)} for s in found]
    seen = health.interfaces(db, site, name, duration(f"{max(1, int(rng.seconds))}s"))
    context["last_seen"] = seen
    context["health"] = health.box_health(db, site, name, duration(HEALTH_WINDOW))
    age = context["health"]["last_seen_ms"]
    context["age_s"] = None if age is None else time.time() - age / 1000
    hstep, times, fields = sitehealth.over_time(db, rng, _where(request, site, name))
    context["charts"].append(
        charts.time_chart("box-health", f"Collector counters per {hstep.text}",
                          [(f, times, fields.get(f, [])) for f in COUNTERS if f in fields],
                          "count"))
    # Only measured while kernel.bpf_stats_enabled=1: no flat line of zeros otherwise.
    if any(fields.get("bpf_ns_per_packet", [])):
        context["charts"].append(charts.time_chart(
            "box-bpf", "BPF cost, ns per packet (mean)",
            [("bpf_ns_per_packet", times, fields["bpf_ns_per_packet"])], "ns"))
    try:
        busiest = top.top(db, "talkers", rng,
                          _where(request, site, name).tag("dir", "ingress"), 10)
    except source.RangeRefused:
        busiest = top.TopResult(None)
    context.update(rp=rp, step=step.text, range=rng, busiest=busiest)
