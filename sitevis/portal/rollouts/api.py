"""/api/rollouts/: history, launch (operators and admins), cancel, events by counter,
and the record of a run made elsewhere (`sitevis rollout`)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from sitevis.portal.accounts import roles
from sitevis.portal.rollouts import launch, serializers
from sitevis.portal.rollouts.filters import RolloutFilter
from sitevis.portal.rollouts.models import Rollout

EVENTS_PAGE = 500
REFUSED = OpenApiResponse(description="not launchable here (no such inventory, rollouts not "
                                      "configured) or already ended: {detail}")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def visible(user: Any) -> QuerySet:
    """Rollouts of the inventories named like the user's sites (every one: no limit)."""
    allowed = roles.allowed_site_names(user)
    rollouts = Rollout.objects.all()
    return rollouts if allowed is None else rollouts.filter(inventory__in=allowed)


def check_site(user: Any, inventory: str) -> None:
    allowed = roles.allowed_site_names(user)
    if allowed is not None and inventory not in allowed:
        raise exceptions.PermissionDenied("not one of your sites")


def queued_message(rollout: Rollout) -> str:
    ahead = launch.waiting_for(rollout)
    if ahead is None:
        return f"rollout #{rollout.pk} queued: it starts when a worker takes it"
    return (f"rollout #{rollout.pk} queued: it waits for rollout #{ahead.pk} "
            f"({ahead.state}) on inventory {rollout.inventory} to end")


class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     viewsets.GenericViewSet):
    serializer_class = serializers.RolloutSerializer
    filterset_class = RolloutFilter
    ordering_fields = ["id", "created", "started", "ended"]
    write_role = roles.OPERATOR

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return Rollout.objects.none()
        return visible(self.request.user).prefetch_related("hosts")

    @extend_schema(request=serializers.LaunchSerializer,
                   responses={202: serializers.LaunchedSerializer, 409: REFUSED})
    def create(self, request: Request) -> Response:
        """Launch: queued for the worker; one runs at a time per inventory, a second
        launch waits behind it (the answer's message says behind which)."""
        given = serializers.LaunchSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        check_site(request.user, data["inventory"])
        try:
            rollout = launch.launch(source=Rollout.Source.API, **data)
        except launch.NotLaunchable as err:
            raise Conflict(str(err)) from None
        answer = serializers.LaunchedSerializer(rollout, context={"request": request}).data
        return Response(answer | {"message": queued_message(rollout)},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: serializers.RolloutSerializer, 409: REFUSED})
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel: a queued rollout at once, a running one within a second or two."""
        rollout = self.get_object()
        if rollout.state not in Rollout.ACTIVE:
            raise Conflict(f"rollout #{rollout.pk} already ended ({rollout.state})")
        rollout = launch.cancel(rollout)
        return Response(self.get_serializer(rollout).data)

    @extend_schema(parameters=[serializers.EventsParams],
                   responses=serializers.EventsSerializer)
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def events(self, request: Request, pk: str | None = None) -> Response:
        """Events after a counter (at most 500 at a time), for live progress."""
        unknown = sorted(set(request.query_params) - {"after", "format"})
        if unknown:
            raise exceptions.ValidationError({"unknown filters": unknown, "known": ["after"]})
        params = serializers.EventsParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        rollout = self.get_object()
        events = list(rollout.events.filter(counter__gt=params.validated_data["after"])
                      [:EVENTS_PAGE])
        last = events[-1].counter if events else params.validated_data["after"]
        return Response({"state": rollout.state, "last": last,
                         "events": serializers.EventSerializer(events, many=True).data})

    @extend_schema(request=serializers.RecordSerializer,
                   responses={201: serializers.RolloutSerializer})
    @action(detail=False, methods=["post"], filter_backends=[])
    def record(self, request: Request) -> Response:
        """Record a finished run made elsewhere (`sitevis rollout`: source cli)."""
        given = serializers.RecordSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        check_site(request.user, data["inventory"])
        data["check_mode"] = data.pop("check")
        data["state"] = data.pop("outcome")
        rollout = launch.record_external(**data)
        return Response(self.get_serializer(rollout).data, status=status.HTTP_201_CREATED)
