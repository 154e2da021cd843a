"""DRF permissions: any role reads; admins write objects; a token writes only when it
was made write-enabled."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

from sitevis.portal.accounts import roles
from sitevis.portal.accounts.models import ApiToken


def token_may_write(request: Any) -> bool:
    token = request.auth
    return not isinstance(token, ApiToken) or token.write_enabled


class RolePermission(permissions.BasePermission):
    """Reads: viewer and up. Writes: `write_role` of the view (default admin) and a
    write-enabled token."""

    message = "your group may not do this"

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return roles.at_least(request.user, getattr(view, "read_role", roles.VIEWER))
        if not token_may_write(request):
            self.message = "this token is read-only"
            return False
        return roles.at_least(request.user, getattr(view, "write_role", roles.ADMIN))
