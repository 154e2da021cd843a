"""{% issues_link %}: the nav's Issues link with the user's open issues counted (one
COUNT query a page)."""

from __future__ import annotations

from typing import Any

from django import template

from sitevis.portal.health.models import State
from sitevis.portal.health.views import visible

register = template.Library()


@register.inclusion_tag("health/_nav.html", takes_context=True)
def issues_link(context: template.Context) -> dict[str, Any]:
    user = getattr(context.get("request"), "user", None)
    signed_in = user is not None and user.is_authenticated
    return {"open": visible(user).filter(status=State.OPEN).count() if signed_in else 0,
            "current": str(context.get("page", "")).startswith("health/")}
