"""Sites, boxes, interfaces and the change log: list, filter, page, order, ?brief."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from sitevis.portal.accounts import roles
from sitevis.portal.api import filters, serializers
from sitevis.portal.changes.models import ObjectChange
from sitevis.portal.inventory.models import Box, Interface, Site
from sitevis.portal.traffic import params, views

BRIEF_PARAM = OpenApiParameter("brief", OpenApiTypes.BOOL, description=(
    "only id, url, display and name"))
TRUE = frozenset({"1", "true", "yes", "on"})


class ScopedViewSet(viewsets.ModelViewSet):
    """Objects of the sites the user may see (scope_field names the site's name)."""

    scope_field = ""
    brief_serializer_class: type = serializers.SiteSerializer

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        allowed = roles.allowed_site_names(self.request.user)
        if allowed is not None:
            queryset = queryset.filter(**{f"{self.scope_field}__in": allowed})
        return queryset

    def get_serializer_class(self) -> type:
        brief = self.request.query_params.get("brief", "").lower() in TRUE
        return self.brief_serializer_class if brief else self.serializer_class


list_schema = extend_schema_view(list=extend_schema(parameters=[BRIEF_PARAM]),
                                 retrieve=extend_schema(parameters=[BRIEF_PARAM]))


@list_schema
class SiteViewSet(ScopedViewSet):
    queryset = Site.objects.all()
    serializer_class = serializers.SiteSerializer
    brief_serializer_class = serializers.BriefSiteSerializer
    filterset_class = filters.SiteFilter
    ordering_fields = ["id", "name", "created", "updated"]
    scope_field = "name"

    def perform_create(self, serializer: Any) -> None:
        # A user limited to some sites could not see a new one: only unlimited admins.
        if roles.allowed_site_names(self.request.user) is not None:
            raise exceptions.PermissionDenied("only users who see every site add sites")
        serializer.save()

    def perform_update(self, serializer: Any) -> None:
        if (roles.allowed_site_names(self.request.user) is not None
                and serializer.validated_data.get("name", serializer.instance.name)
                != serializer.instance.name):
            raise exceptions.PermissionDenied("only users who see every site rename sites")
        serializer.save()


@list_schema
class BoxViewSet(ScopedViewSet):
    queryset = Box.objects.select_related("site")
    serializer_class = serializers.BoxSerializer
    brief_serializer_class = serializers.BriefBoxSerializer
    filterset_class = filters.BoxFilter
    ordering_fields = ["id", "name", "site__name", "address", "last_seen", "created"]
    scope_field = "site__name"
    throttle_scope = "traffic"   # for health, the one action that reads InfluxDB

    @extend_schema(parameters=[params.HealthParams], responses=params.HealthOut)
    @action(detail=True, methods=["get"], throttle_classes=[ScopedRateThrottle],
            filter_backends=[])
    def health(self, request: Request, pk: str | None = None) -> Response:
        """The box's collector self-metrics: coverage, losses, spool, BPF cost."""
        return views.box_health(request, self.get_object())


@list_schema
class InterfaceViewSet(ScopedViewSet):
    queryset = Interface.objects.select_related("box", "box__site")
    serializer_class = serializers.InterfaceSerializer
    brief_serializer_class = serializers.BriefInterfaceSerializer
    filterset_class = filters.InterfaceFilter
    ordering_fields = ["id", "name", "box__name", "last_seen"]
    scope_field = "box__site__name"


class ChangeViewSet(viewsets.ReadOnlyModelViewSet):
    """The change log, for admins who see every site (it spans them all)."""

    queryset = ObjectChange.objects.all()
    serializer_class = serializers.ChangeSerializer
    filterset_class = filters.ChangeFilter
    ordering_fields = ["time", "id"]
    read_role = roles.ADMIN

    def get_queryset(self) -> QuerySet:
        if roles.allowed_site_names(self.request.user) is not None:
            return ObjectChange.objects.none()
        return super().get_queryset()

