"""Secrets out of everything a rollout stores: no_log results as sitevis.runner hides them,
then values of variables named like password, secret or token, in mappings and in text."""

from __future__ import annotations

import re
from typing import Any

HIDDEN = "********"
SECRET_NAME = re.compile(r"passw(or)?d|secret|token|api_?key", re.IGNORECASE)
# name=value, name: value, "name": "value" — the value up to a quote, comma or space.
SECRET_TEXT = re.compile(
    r"""(?P<name>[\w.-]*(?:passw(?:or)?d|secret|token|api_?key)[\w.-]*)(?P<q>["']?)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<v>"[^"]*"|'[^']*'|[^\s,;}\]]+)""",
    re.IGNORECASE)


def mapping(value: Any) -> Any:
    """A copy with the values of secret-named keys hidden, at any depth."""
    if isinstance(value, dict):
        return {k: HIDDEN if isinstance(k, str) and SECRET_NAME.search(k) else mapping(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mapping(v) for v in value]
    return value


def text(value: str) -> str:
    return SECRET_TEXT.sub(lambda m: f"{m['name']}{m['q']}{m['sep']}{HIDDEN}", value)


def message(result: dict[str, Any]) -> str:
    """One short line of an event's result, secrets hidden (no_log: as sitevis.runner says)."""
    from sitevis.runner import _message  # events exist only where ansible-runner does

    return text(_message(mapping(result)))
