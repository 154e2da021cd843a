"""The three groups and what each may do; the sites a user may see."""

from __future__ import annotations

from typing import Any

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)   # each may do what the ones before it may


def role(user: Any) -> str | None:
    """The user's highest group (superusers are admins); None: no portal role."""
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    return next((r for r in reversed(ROLES) if r in names), None)


def at_least(user: Any, wanted: str) -> bool:
    have = role(user)
    return have is not None and ROLES.index(have) >= ROLES.index(wanted)


def allowed_site_names(user: Any) -> set[str] | None:
    """Names of the sites the user may see; None means every site."""
    if user.is_superuser:
        return None
    scope = getattr(user, "site_scope", None)
    if scope is None:
        return set()
    if scope.all_sites:
        return None
    return set(scope.sites.values_list("name", flat=True))
