"""The pages' filters as GET forms: every control has a label, every value is checked
(sitevis.query's rules) before it reaches a query, and the URL holds the whole state."""

from __future__ import annotations

from typing import Any

from django import forms

from sitevis.portal.traffic import timerange, top
from sitevis.portal.traffic.timerange import TimeRange
from sitevis.query import MAX_TEXT, QueryError, tag_value

RANGES = [("5m", "last 5 minutes"), ("15m", "last 15 minutes"), ("1h", "last hour"),
          ("3h", "last 3 hours"), ("6h", "last 6 hours"), ("12h", "last 12 hours"),
          ("24h", "last 24 hours"),
          ("2d", "last 2 days"), ("7d", "last 7 days"), ("30d", "last 30 days")]
REFRESH = [("", "off"), ("30", "every 30 s"), ("60", "every minute"), ("300", "every 5 min")]
DIRECTIONS = [("ingress", "in (ingress)"), ("egress", "out (egress)"), ("any", "both")]
BY = [(by, by) for by in top.GROUPINGS]
LIMITS = [("5", "5"), ("10", "10"), ("20", "20"), ("50", "50")]
LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _tag(value: str) -> str:
    try:
        return tag_value(value)
    except QueryError as err:
        raise forms.ValidationError(str(err)) from None


def tag_field(label: str, datalist: str = "") -> forms.CharField:
    attrs = {"list": datalist} if datalist else {}
    return forms.CharField(label=label, required=False, max_length=MAX_TEXT,
                           validators=[_tag], widget=forms.TextInput(attrs=attrs))


class RangeForm(forms.Form):
    since = forms.ChoiceField(label="Time range", choices=RANGES, required=False)
    start = forms.DateTimeField(label="From (UTC)", required=False, widget=LOCAL)
    end = forms.DateTimeField(label="To (UTC)", required=False, widget=LOCAL)
    refresh = forms.ChoiceField(label="Auto-refresh", choices=REFRESH, required=False)

    defaults: dict[str, str] = {}

    def __init__(self, data: Any = None, **kwargs: Any) -> None:
        # The controls show what is in force: the last hour and the form's defaults unless
        # the URL says otherwise.
        if data is not None:
            data = data.copy()
            if not data.get("since") and not data.get("start"):
                data["since"] = "1h"
            for key, value in self.defaults.items():
                data.setdefault(key, value)
        super().__init__(data, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        try:
            # An absolute range wins over the preset; "to" alone is not a range.
            data["range"] = timerange.resolve(None if start else data.get("since") or "1h",
                                              None, start, end if start else None)
        except QueryError as err:
            raise forms.ValidationError(str(err)) from None
        return data

    @property
    def range(self) -> TimeRange:
        return self.cleaned_data["range"]


class ExplorerForm(RangeForm):
    defaults = {"by": "talkers", "dir": "ingress", "limit": "10", "unit": "bits"}
    site = tag_field("Site", "sites")
    box = tag_field("Box", "boxes")
    interface = tag_field("Interface", "interfaces")
    dir = forms.ChoiceField(label="Direction", choices=DIRECTIONS, required=False)
    proto = tag_field("Protocol", "protos")
    service = tag_field("Service", "services")
    addr = tag_field("Address or prefix class")
    by = forms.ChoiceField(label="Group by", choices=BY, required=False)
    limit = forms.ChoiceField(label="Top", choices=LIMITS, required=False)
    unit = forms.ChoiceField(label="Unit", choices=[("bits", "bits/s"), ("packets", "packets/s")],
                             required=False)


class PacketsForm(RangeForm):
    site = tag_field("Site", "sites")
    box = tag_field("Box", "boxes")
    interface = tag_field("Interface", "interfaces")
    dir = forms.ChoiceField(label="Direction", choices=DIRECTIONS[2:] + DIRECTIONS[:2],
                            required=False)
    proto = tag_field("Protocol", "protos")
    limit = forms.ChoiceField(label="Rows", choices=[("100", "100"), ("500", "500"),
                                                     ("1000", "1000")], required=False)
