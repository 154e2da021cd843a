"""/api/health/: issues (list, filter, order; acknowledge and resolve for operators),
webhooks per site (admins; the secret is write-only) and their deliveries (read-only)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.validators import URLValidator
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import BaseRouter
from rest_framework.status import HTTP_409_CONFLICT

from sitevis.portal.accounts import roles
from sitevis.portal.api.filters import IdFilter
from sitevis.portal.api.serializers import _in_scope
from sitevis.portal.health import lifecycle
from sitevis.portal.health.models import Attempt, Delivery, Issue, Kind, State, Webhook


class ScopedMixin:
    """Rows of the sites the user may see, as the object endpoints limit them."""

    scope_field = ""
    request: Request

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()  # type: ignore[misc]
        allowed = roles.allowed_site_names(self.request.user)
        if allowed is not None:
            queryset = queryset.filter(**{f"{self.scope_field}__in": allowed})
        return queryset


class IssueSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:health-issue-detail")
    box_name = serializers.CharField(source="box.name", read_only=True)
    site_name = serializers.CharField(source="box.site.name", read_only=True)

    class Meta:
        model = Issue
        fields = ["id", "url", "box", "box_name", "site_name", "kind", "status", "detail",
                  "first_seen", "last_seen", "count", "healthy_streak", "acknowledged_by",
                  "acknowledged_at", "note", "resolved_by", "resolved_at"]
        read_only_fields = fields


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class IssueFilter(django_filters.FilterSet):
    id = IdFilter()
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    status = django_filters.ChoiceFilter(choices=State.choices)
    unresolved = django_filters.BooleanFilter(method="only_unresolved")
    box = django_filters.CharFilter(field_name="box__name")
    box_id = IdFilter()
    site = django_filters.CharFilter(field_name="box__site__name")
    since = django_filters.IsoDateTimeFilter(field_name="last_seen", lookup_expr="gte")

    class Meta:
        model = Issue
        fields = ["id", "kind", "status", "box", "box_id", "site"]

    def only_unresolved(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return (queryset.exclude(status=State.RESOLVED) if value
                else queryset.filter(status=State.RESOLVED))


STEP_REFUSED = OpenApiResponse(description="the issue's status does not allow this step")


class IssueViewSet(ScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Health issues of the user's sites; operators and admins acknowledge and resolve."""

    queryset = Issue.objects.select_related("box", "box__site")
    serializer_class = IssueSerializer
    filterset_class = IssueFilter
    ordering_fields = ["id", "first_seen", "last_seen", "count", "kind", "status"]
    scope_field = "box__site__name"
    write_role = roles.OPERATOR

    def _step(self, request: Request, step: Any) -> Response:
        note = NoteSerializer(data=request.data)
        note.is_valid(raise_exception=True)
        try:
            issue = step(self.get_object(), request.user.get_username(),
                         note.validated_data["note"])
        except lifecycle.LifecycleError as err:
            return Response({"detail": str(err)}, status=HTTP_409_CONFLICT)
        return Response(IssueSerializer(issue, context={"request": request}).data)

    @extend_schema(request=NoteSerializer, responses={200: IssueSerializer, 409: STEP_REFUSED})
    @action(detail=True, methods=["post"], filter_backends=[])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Acknowledge an open issue, with an optional note (in the change log)."""
        return self._step(request, lifecycle.acknowledge)

    @extend_schema(request=NoteSerializer, responses={200: IssueSerializer, 409: STEP_REFUSED})
    @action(detail=True, methods=["post"], filter_backends=[])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Resolve an issue by hand (it opens again if the rule still finds it)."""
        return self._step(request, lifecycle.resolve)


class WebhookSerializer(serializers.ModelSerializer):
    url = serializers.CharField(max_length=500,
                                validators=[URLValidator(schemes=["http", "https"])])
    secret = serializers.CharField(write_only=True, min_length=16, max_length=200,
                                   help_text="HMAC-SHA256 key of X-Sitevis-Signature; "
                                             "never returned")
    site_name = serializers.CharField(source="site.name", read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "site", "site_name", "url", "secret", "enabled", "created"]

    def validate_site(self, site: Any) -> Any:
        _in_scope(self.context["request"], site)
        return site


class WebhookFilter(django_filters.FilterSet):
    id = IdFilter()
    site = django_filters.CharFilter(field_name="site__name")
    site_id = IdFilter()
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = Webhook
        fields = ["id", "site", "site_id", "enabled"]


class WebhookViewSet(ScopedMixin, viewsets.ModelViewSet):
    """Where a site's issue events go (admins only)."""

    queryset = Webhook.objects.select_related("site")
    serializer_class = WebhookSerializer
    filterset_class = WebhookFilter
    ordering_fields = ["id", "created"]
    scope_field = "site__name"
    read_role = roles.ADMIN


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["time", "status_code", "error", "duration_ms"]


class DeliverySerializer(serializers.ModelSerializer):
    tries = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "webhook", "issue", "event", "outcome", "attempts", "next_attempt",
                  "created", "body", "tries"]


class DeliveryFilter(django_filters.FilterSet):
    id = IdFilter()
    webhook_id = IdFilter()
    issue_id = IdFilter()
    outcome = django_filters.ChoiceFilter(choices=Delivery.Outcome.choices)
    event = django_filters.CharFilter(max_length=32)

    class Meta:
        model = Delivery
        fields = ["id", "webhook_id", "issue_id", "outcome", "event"]


class DeliveryViewSet(ScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Every delivery of the user's sites' webhooks and each attempt (admins only)."""

    queryset = Delivery.objects.prefetch_related("tries")
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    ordering_fields = ["id", "created", "next_attempt"]
    scope_field = "webhook__site__name"
    read_role = roles.ADMIN


def register(router: BaseRouter) -> None:
    router.register("health/issues", IssueViewSet, basename="health-issue")
    router.register("health/webhooks", WebhookViewSet, basename="health-webhook")
    router.register("health/deliveries", DeliveryViewSet, basename="health-delivery")

