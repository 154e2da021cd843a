"""What a name must be to become an InfluxDB tag value or an Ansible name."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from sitevis.query import QueryError, tag_value

GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)   # Ansible's group names
ADDRESS = re.compile(r"[A-Za-z0-9_.:%-]+", re.ASCII)       # host name, IPv4, IPv6
MAX_GROUPS = 64


def tag_name(value: str) -> None:
    """A site, box or interface name: what the collector writes as a tag."""
    try:
        tag_value(value, "name")
    except QueryError as err:
        raise ValidationError(str(err)) from None
    if value != value.strip():
        raise ValidationError("a name has no leading or trailing spaces")


def address(value: str) -> None:
    if value and not ADDRESS.fullmatch(value):
        raise ValidationError(f"{value!r} is not a host name or IP address")


def group_name(value: str) -> None:
    if not isinstance(value, str) or len(value) > 100 or not GROUP.fullmatch(value):
        raise ValidationError(f"{value!r} is not an Ansible group name "
                              "(letters, digits, _; not first a digit)")


def group_list(value: object) -> None:
    if not isinstance(value, list) or len(value) > MAX_GROUPS:
        raise ValidationError(f"groups must be a list of at most {MAX_GROUPS} names")
    for item in value:
        group_name(item)
    if len(set(value)) != len(value):
        raise ValidationError("groups must not repeat")
