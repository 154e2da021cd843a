"""Brute-force protection: too many failed logins for a user name or from an address
lock both out for a while, whichever login form or endpoint was used."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def _keys(ip: str | None, username: str | None) -> list[str]:
    keys = [f"lockout:ip:{ip or '-'}"]
    if username:  # hashed: cache keys must be short and plain
        keys.append("lockout:user:" + hashlib.sha256(username.lower().encode()).hexdigest())
    return keys


def _count(key: str) -> tuple[int, float]:
    """(failures, when the window ends); the window starts at the first failure and
    is never extended (cache.incr would reset the expiry to the default)."""
    value = cache.get(key)
    if not isinstance(value, tuple) or value[1] <= time.time():
        return 0, time.time() + settings.CONFIG.login_lock_seconds
    return value


def locked(ip: str | None, username: str | None) -> bool:
    limit = settings.CONFIG.login_failures
    return any(_count(key)[0] >= limit for key in _keys(ip, username))


def failed(ip: str | None, username: str | None) -> None:
    for key in _keys(ip, username):
        count, until = _count(key)
        cache.set(key, (count + 1, until), timeout=max(1, int(until - time.time()) + 1))


def succeeded(username: str) -> None:
    # Only the user's counter: a success must not reset an address that guesses others.
    cache.delete_many(_keys(None, username)[1:])


def client_ip(request: object) -> str | None:
    return getattr(request, "META", {}).get("REMOTE_ADDR")
