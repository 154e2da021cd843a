"""What of a rollout may reach ansible-playbook's command line. The API and the pages
check launches with these patterns; the root runner checks its requests again, field by
field, because they come from a less trusted user (the portal's)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PLAYBOOKS = ("site", "verify", "remove")
# Host patterns and tags: never an option, a space or a newline.
LIMIT_PATTERN = r"^(?!-)[\w.,:!&*\[\]@-]*$"
TAGS_PATTERN = r"^(?!-)[\w.,-]*$"
NAME_PATTERN = r"^[\w.-]{1,100}$"      # an inventory's name in rollouts.yml
TOKEN_PATTERN = r"^[0-9a-f]{32}$"
MAX_FIELD = 255
MAX_BYTES = 4096


class RequestError(ValueError):
    """A request the root runner refuses (its one-line reason)."""


@dataclass(frozen=True)
class RunRequest:
    """One rollout handed to the root runner. `token` tells this hand-over apart from an
    older run of the same rollout id (a re-created database)."""

    rollout: int
    token: str
    playbook: str
    inventory: str
    limit: str = ""
    tags: str = ""
    check: bool = False

    @classmethod
    def parse(cls, raw: bytes) -> RunRequest:
        if len(raw) > MAX_BYTES:
            raise RequestError(f"a request is at most {MAX_BYTES} bytes, got {len(raw)}")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RequestError(f"not a JSON request: {err}") from None
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise RequestError(
                f"a request has exactly the keys {', '.join(sorted(cls.__dataclass_fields__))}")
        _check(data)
        return cls(**data)


def _check(data: dict[str, Any]) -> None:
    rollout, check = data["rollout"], data["check"]
    if type(rollout) is not int or not 0 < rollout < 2**63:
        raise RequestError(f"rollout must be a positive integer, got {rollout!r}")
    if type(check) is not bool:
        raise RequestError(f"check must be true or false, got {check!r}")
    if data["playbook"] not in PLAYBOOKS:
        raise RequestError(f"playbook must be one of {', '.join(PLAYBOOKS)}, "
                           f"got {data['playbook']!r}")
    for key, pattern, what in (
            ("token", TOKEN_PATTERN, "32 hexadecimal digits"),
            ("inventory", NAME_PATTERN, "a name of letters, digits, '.', '_' or '-'"),
            ("limit", LIMIT_PATTERN, "hosts, groups and patterns only"),
            ("tags", TAGS_PATTERN, "comma-separated tag names only")):
        value = data[key]
        if not isinstance(value, str) or len(value) > MAX_FIELD or not re.fullmatch(
                pattern, value):
            raise RequestError(f"{key} must be {what}, got {str(value)[:80]!r}")
