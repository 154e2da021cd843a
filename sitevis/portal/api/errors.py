"""Every error as JSON; InfluxDB trouble as 503 with one line (never a traceback)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from sitevis.influx import InfluxError
from sitevis.query import QueryError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent)):
        return Response({"detail": "request too large"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, QueryError):
        exc = exceptions.ValidationError({"detail": str(exc)})
    if isinstance(exc, InfluxError):
        return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    return drf_handler(exc, context)
