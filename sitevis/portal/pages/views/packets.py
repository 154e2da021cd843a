"""Packets: the sampled packet records of a range (raw only), filtered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from sitevis.influx import InfluxError
from sitevis.portal.pages import access, forms
from sitevis.portal.traffic import packets, source
from sitevis.query import QueryError

FLAGS = ((1, "F"), (2, "S"), (4, "R"), (8, "P"), (16, "A"), (32, "U"), (64, "E"), (128, "C"))


def flags(value: int | None) -> str:
    return "".join(name for bit, name in FLAGS if (value or 0) & bit) or "-"


@access.page
def packet_list(request: HttpRequest) -> HttpResponse:
    form = forms.PacketsForm(request.GET)
    context: dict[str, Any] = {"form": form, "rows": [],
                               "sites": access.visible_sites(request),
                               "boxes": sorted({b.name for b in access.visible_boxes(request)})}
    if form.is_valid():
        data = form.cleaned_data
        where = access.where(request, data.get("site"))
        if where is not None:
            for field, tag in (("box", "box"), ("interface", "iface"), ("proto", "proto")):
                if data.get(field):
                    where.tag(tag, data[field])
            if (data.get("dir") or "any") != "any":
                where.tag("dir", data["dir"])
            try:
                rows = packets.sampled(source.influx(), form.range, where,
                                       int(data.get("limit") or 100))
            except (InfluxError, QueryError) as err:
                context["error"] = str(err)
                rows = []
            for row in rows:
                row["when"] = datetime.fromtimestamp(row["time"] / 1000, tz=UTC)
                row["flags"] = flags(row.get("tcp_flags"))
            context["rows"] = rows
        context["range"] = form.range
    return access.render_page(request, "pages/packets.html", context,
                              "pages/packets_live.html")
