"""Who is acting right now: set per request by the middleware, per run by a command."""

from __future__ import annotations

import contextvars
import getpass
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    request: Any = None           # the HttpRequest: its user is known only after DRF auth
    name: str = ""                # a command's actor ("cli:root") when there is no request
    source_ip: str | None = None
    request_id: uuid.UUID | None = None

    @classmethod
    def from_request(cls, request: Any, request_id: uuid.UUID) -> Actor:
        # REMOTE_ADDR only: gunicorn is reached directly (bind address); a header a client
        # sends (X-Forwarded-For) is not evidence of anything.
        return cls(request=request, source_ip=request.META.get("REMOTE_ADDR"),
                   request_id=request_id)

    @classmethod
    def command(cls, name: str) -> Actor:
        return cls(name=f"{name}:{getpass.getuser()}", request_id=uuid.uuid4())

    def user(self) -> Any:
        user = getattr(self.request, "user", None)
        return user if user is not None and user.is_authenticated else None

    def user_name(self) -> str:
        user = self.user()
        return user.get_username() if user is not None else self.name or "anonymous"


_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("actor", default=None)


def bind(actor: Actor) -> contextvars.Token:
    return _current.set(actor)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> Actor:
    return _current.get() or Actor(name="system")
