"""InfluxDB line protocol for what the controller and the portal write themselves (rollout
annotations, top lists computed ahead): escaped tag values and string fields."""

from __future__ import annotations


def tag(value: str) -> str:
    """A tag value: backslash, comma, equals sign and space escaped."""
    return (value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
            .replace(" ", "\\ "))


def string(value: str) -> str:
    """A string field value, quoted."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
