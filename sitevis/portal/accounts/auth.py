"""DRF authentication by API token: `Authorization: Token svp_...` (or Bearer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from sitevis.portal.accounts import tokens
from sitevis.portal.accounts.models import ApiToken

# last_used is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
KEYWORDS = (b"token", b"bearer")


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Token <token>")
        try:
            parts = tokens.split(header[1].decode("ascii"))
        except UnicodeDecodeError:
            parts = None
        token = ApiToken.objects.select_related("user").filter(
            key_id=parts[0]).first() if parts else None
        if parts is None or token is None or not tokens.matches(parts[1], token.digest):
            raise exceptions.AuthenticationFailed("invalid token")
        if token.expired:
            raise exceptions.AuthenticationFailed("token expired")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("user inactive")
        now = timezone.now()
        if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return "Token"
