"""Who am I, and API tokens: one's own, listed without secrets, each shown once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from sitevis.portal.accounts import lockout, roles, tokens
from sitevis.portal.accounts.models import ApiToken
from sitevis.portal.api import serializers


class MeView(APIView):
    @extend_schema(responses=serializers.MeSerializer)
    def get(self, request: Request) -> Response:
        allowed = roles.allowed_site_names(request.user)
        return Response({"username": request.user.get_username(),
                         "role": roles.role(request.user),
                         "sites": None if allowed is None else sorted(allowed)})


class LoginThrottle(AnonRateThrottle):
    scope = "login"


def _make_token(user: Any, description: str, write_enabled: bool, expires: Any) -> Response:
    if write_enabled and not roles.at_least(user, roles.OPERATOR):
        raise exceptions.ValidationError({"write_enabled": ["viewers have read-only tokens"]})
    text, key_id, digest = tokens.new()
    token = ApiToken.objects.create(user=user, key_id=key_id, digest=digest,
                                    description=description, write_enabled=write_enabled,
                                    expires=expires)
    data = serializers.NewTokenSerializer(token).data | {"token": text}
    return Response(data, status=status.HTTP_201_CREATED)


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                   mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """One's own tokens. Making one needs a session or a write-enabled token (any role
    may make read-only ones); `provision` makes one from a user name and password."""

    serializer_class = serializers.TokenSerializer
    filterset_class = None
    ordering_fields = ["created", "last_used"]
    write_role = roles.VIEWER

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=serializers.TokenSerializer,
                   responses={201: serializers.NewTokenSerializer})
    def create(self, request: Request) -> Response:
        given = serializers.TokenSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        return _make_token(request.user, data.get("description", ""),
                           data.get("write_enabled", False), data.get("expires"))

    @extend_schema(request=serializers.ProvisionSerializer,
                   responses={201: serializers.NewTokenSerializer})
    @action(detail=False, methods=["post"], authentication_classes=[],
            permission_classes=[permissions.AllowAny], throttle_classes=[LoginThrottle])
    def provision(self, request: Request) -> Response:
        given = serializers.ProvisionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        if lockout.locked(lockout.client_ip(request), data["username"]):
            raise exceptions.Throttled(detail="too many failed logins; try again later")
        user = authenticate(request._request, username=data["username"],
                            password=data["password"])
        if user is None:
            raise exceptions.AuthenticationFailed("wrong user name or password")
        if roles.role(user) is None:
            raise exceptions.PermissionDenied("this user has no portal group")
        return _make_token(user, data["description"], data["write_enabled"], data["expires"])
