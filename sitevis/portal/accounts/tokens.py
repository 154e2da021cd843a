"""Making and checking token strings."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "svp"
KEY_ID_BYTES = 6      # 12 hex characters: the public, indexed half
SECRET_BYTES = 32


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new() -> tuple[str, str, str]:
    """(full token, key id, digest of its secret)."""
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{PREFIX}_{key_id}_{secret}", key_id, digest(secret)


def split(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 2 * KEY_ID_BYTES:
        return None
    if not parts[2] or len(parts[2]) > 100:
        return None
    return parts[1], parts[2]


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
