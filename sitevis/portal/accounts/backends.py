"""Django's password check behind the lockout (login page, admin, token provisioning)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from sitevis.portal.accounts import lockout


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request: Any, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> Any:
        if lockout.locked(lockout.client_ip(request), username):
            raise PermissionDenied("too many failed logins; try again later")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _count_failure(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    lockout.failed(lockout.client_ip(request), credentials.get("username"))


@receiver(user_logged_in)
def _clear(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    lockout.succeeded(user.get_username())
