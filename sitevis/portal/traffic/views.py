"""The traffic endpoints: checked parameters in, InfluxDB (sitevis.query) out."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from sitevis.influx import InfluxError
from sitevis.portal.accounts import roles
from sitevis.portal.inventory.models import Box
from sitevis.portal.traffic import ahead, ahead_series, health, packets, params, series, source, top
from sitevis.portal.traffic.timerange import NS, TimeRange
from sitevis.query import Where, duration


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, tz=UTC).isoformat()


def checked(cls: type, request: Request) -> dict[str, Any]:
    given = cls(data=request.query_params)
    given.is_valid(raise_exception=True)
    unknown = sorted(set(request.query_params) - set(given.fields))
    if unknown:
        raise exceptions.ValidationError({"unknown parameters": unknown})
    return dict(given.validated_data)


def scoped_where(request: Request, p: dict[str, Any]) -> Where | None:
    """Scope, site, box, interface and direction conditions (None: nothing visible)."""
    try:
        where = source.scoped(Where(), roles.allowed_site_names(request.user), p.get("site"))
    except PermissionError:
        raise exceptions.PermissionDenied("not one of your sites") from None
    if where is None:
        return None
    if p.get("box"):
        where.tag("box", p["box"])
    if p.get("interface"):
        where.tag("iface", p["interface"])
    if p.get("dir", "any") != "any":
        where.tag("dir", p["dir"])
    if p.get("proto"):
        where.tag("proto", p["proto"])
    return where


class TrafficView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "traffic"


def _computed_ahead(request: Request, p: dict[str, Any]) -> tuple[ahead.Computed,
                                                                   set[str] | None] | None:
    """The pass computed ahead that answers this request, with the sites to take from it
    (None: all), or None when it must be computed now."""
    preset = ahead.preset_of(request.query_params)
    if preset is None:
        return None
    found = ahead.newest(p["by"], preset, settings.CONFIG.overview_refresh_seconds)
    if found is None:
        return None
    allowed = roles.allowed_site_names(request.user)
    return found, ({p["site"]} if p.get("site") else allowed)


class TopView(TrafficView):
    @extend_schema(parameters=[params.TopParams], responses=params.TopOut)
    def get(self, request: Request) -> Response:
        p = checked(params.TopParams, request)
        rng: TimeRange = p["range"]
        where = scoped_where(request, p)
        answer = _computed_ahead(request, p) if where is not None else None
        computed_ns = None
        try:
            if answer is not None:
                computed, sites = answer
                result = ahead.ranked(computed, p["dir"], sites, p["limit"])
                rng = TimeRange(computed.start_ns, computed.end_ns)
                computed_ns = computed.computed_ns
            elif where is not None:
                result = top.top(source.influx(), p["by"], rng, where, p["limit"])
            else:
                result = top.TopResult(None)
        except source.RangeRefused as err:
            raise exceptions.ValidationError({"detail": str(err)}) from None
        return Response({
            "by": p["by"], "dir": p["dir"], "rp": result.rp, "start": _iso(rng.start_ns),
            "end": _iso(rng.end_ns), "total_bytes": result.total_bytes,
            "computed_ahead": None if computed_ns is None else _iso(computed_ns),
            "rows": [vars(r) for r in result.rows],
            "other": {"key": {}, "bytes": result.other.bytes,
                      "packets": result.other.packets}})


class SeriesView(TrafficView):
    @extend_schema(parameters=[params.SeriesParams], responses=params.TrafficOut)
    def get(self, request: Request) -> Response:
        p = checked(params.SeriesParams, request)
        rng: TimeRange = p["range"]
        where = scoped_where(request, p)
        preset = (ahead.preset_of(request.query_params, ahead_series.PRESETS)
                  if p["per"] == "box" else None)
        computed = (ahead_series.newest(preset, settings.CONFIG.overview_refresh_seconds)
                    if preset and where is not None else None)
        computed_ns = None
        if computed is not None:
            sites = ({p["site"]} if p.get("site")
                     else roles.allowed_site_names(request.user))
            rp, step = computed.rp, computed.step
            found = ahead_series.picked(computed, p["dir"], sites)
            rng = TimeRange(computed.start_ns, computed.end_ns)
            computed_ns = computed.computed_ns
        elif where is not None:
            rp, step, found = series.traffic(source.influx(), rng, where, p["per"])
        else:
            rp, step, found = None, duration("10s"), []
        return Response({"rp": rp, "step": step.text, "start": _iso(rng.start_ns),
                         "end": _iso(rng.end_ns),
                         "computed_ahead": None if computed_ns is None else _iso(computed_ns),
                         "series": [vars(s) for s in found]})


class PacketsView(TrafficView):
    @extend_schema(parameters=[params.PacketParams], responses=params.PacketsOut)
    def get(self, request: Request) -> Response:
        p = checked(params.PacketParams, request)
        where = scoped_where(request, p)
        rows = (packets.sampled(source.influx(), p["range"], where, p["limit"])
                if where is not None else [])
        return Response({"packets": rows})


class StatusView(APIView):
    @extend_schema(responses=params.StatusOut)
    def get(self, request: Request) -> Response:
        allowed = roles.allowed_site_names(request.user)
        boxes: list[dict[str, Any]] = []
        error = None
        where = source.scoped(Where(), allowed, None)
        try:
            if where is not None:
                boxes = health.freshness(source.influx(), where)
        except InfluxError as err:
            error = str(err)
        now_ms = time.time() * 1000
        for box in boxes:
            age = None if box["last_seen_ms"] is None else (now_ms - box["last_seen_ms"]) / 1000
            box.update(age_s=age, fresh=age is not None and age <= health.STALE_AFTER_S)
        return Response({"version": settings.SITEVIS_VERSION,
                         "influxdb": {"reachable": error is None, "error": error},
                         "boxes": boxes})


def box_health(request: Request, box: Box) -> Response:
    p = checked(params.HealthParams, request)
    window = duration(p.get("window") or "5m")
    found = health.box_health(source.influx(), box.site.name, box.name, window)
    return Response({"box": box.name, "site": box.site.name, **found})
