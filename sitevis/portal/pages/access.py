"""Who sees a page and what of the data: a portal role to see anything, the user's sites
(accounts.roles) as InfluxDB conditions through traffic.source.scoped, as the API does."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from sitevis.portal.accounts import roles
from sitevis.portal.inventory.models import Box, Site
from sitevis.portal.traffic import source
from sitevis.portal.traffic.flowseries import FlowWhere

View = Callable[..., HttpResponse]


def page(view: View) -> View:
    """Signed in with a portal role; a URL with empty parameters is redirected to the same
    URL without them, so what is shared or bookmarked reads cleanly."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if roles.role(request.user) is None:
            raise PermissionDenied("no portal role")
        if any(v == "" for v in request.GET.values()):
            clean = request.GET.copy()
            for key in [k for k, v in request.GET.items() if v == ""]:
                del clean[key]
            query = clean.urlencode()
            return HttpResponseRedirect(request.path + (f"?{query}" if query else ""))
        return view(request, *args, **kwargs)

    return wrapped


def where(request: HttpRequest, site: str | None = None) -> FlowWhere | None:
    """The user's site conditions (and `site`); None when nothing is visible; a site the
    user may not see is a 403."""
    found = FlowWhere()
    try:
        if source.scoped(found, roles.allowed_site_names(request.user), site or None) is None:
            return None
    except PermissionError:
        raise PermissionDenied("not one of your sites") from None
    return found


def visible_boxes(request: HttpRequest) -> list[Box]:
    allowed = roles.allowed_site_names(request.user)
    boxes = Box.objects.select_related("site")
    return list(boxes if allowed is None else boxes.filter(site__name__in=allowed))


def visible_sites(request: HttpRequest) -> list[str]:
    allowed = roles.allowed_site_names(request.user)
    names = Site.objects.values_list("name", flat=True)
    return sorted(names if allowed is None else [n for n in names if n in allowed])


def render_page(request: HttpRequest, name: str, context: dict[str, Any],
                live: str | None = None) -> HttpResponse:
    """The page, or only its live part (`live` template) for an htmx refresh."""
    context.update(
        is_admin=roles.at_least(request.user, roles.ADMIN),
        role=roles.role(request.user),
        grafana_url=getattr(settings, "SITEVIS_GRAFANA_URL", "").rstrip("/"),
        version=settings.SITEVIS_VERSION,
        page=name.removeprefix("pages/").removesuffix(".html"))
    if live and getattr(request, "htmx", False):
        return render(request, live, context)
    return render(request, name, context)
