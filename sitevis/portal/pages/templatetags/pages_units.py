"""Template filters for pages.units: {{ value|bits }}, |pps, |nbytes, |age, |percent."""

from __future__ import annotations

from django import template

from sitevis.portal.pages import charts, units

register = template.Library()
register.filter("bits", units.bits_per_s)
register.filter("pps", units.packets_per_s)
register.filter("nbytes", units.nbytes)
register.filter("age", units.age)
register.filter("percent", units.percent)
register.filter("keylabel", charts.label)   # a top row's key: src → dst, '-' if absent


@register.filter
def get(mapping: dict, key: str) -> object:
    return mapping.get(key)
