"""Filtersets for the object endpoints; a query parameter nobody knows is a 400, never
"everything" (a typo must not silently widen an answer)."""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from sitevis.portal.changes.models import ObjectChange
from sitevis.portal.inventory import validators
from sitevis.portal.inventory.models import Box, Interface, Site


class IdFilter(django_filters.NumberFilter):
    """A database id: an integer the database can hold (not any decimal)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, min_value=1, max_value=2**63 - 1, **kwargs)


# Parameters of pagination, ordering and representation, valid on every list.
COMMON = frozenset({"limit", "offset", "ordering", "brief", "format"})


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        filterset_class = self.get_filterset_class(view, queryset)
        known = set(COMMON)
        if filterset_class is not None:
            known |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise ValidationError({"unknown filters": unknown,
                                   "known": sorted(known)})
        return super().filter_queryset(request, queryset, view)


class SiteFilter(django_filters.FilterSet):
    id = IdFilter()
    name = django_filters.CharFilter()
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=255)

    class Meta:
        model = Site
        fields = ["id", "name"]


class BoxFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", max_length=255)
    site = django_filters.CharFilter(field_name="site__name")
    id = IdFilter()
    site_id = IdFilter()
    address = django_filters.CharFilter()
    group = django_filters.CharFilter(method="in_group", max_length=100)

    class Meta:
        model = Box
        fields = ["id", "name", "site", "site_id", "address"]

    def in_group(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        try:
            validators.group_name(value)
        except Exception as err:
            raise ValidationError({"group": [str(err.args[0])]}) from None
        # JSON lists on SQLite and PostgreSQL alike: the quoted name inside the list text
        # (group names are plain identifiers, so this is an exact element match).
        return queryset.filter(groups__icontains=json.dumps(value))


class InterfaceFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    box = django_filters.CharFilter(field_name="box__name")
    id = IdFilter()
    box_id = IdFilter()
    site = django_filters.CharFilter(field_name="box__site__name")

    class Meta:
        model = Interface
        fields = ["id", "name", "box", "box_id", "site"]


class ChangeFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=ObjectChange.Action.choices)
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    user_name = django_filters.CharFilter()
    request_id = django_filters.UUIDFilter()
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")

    class Meta:
        model = ObjectChange
        fields = ["action", "object_type", "object_id", "user_name", "request_id"]
