"""A running portal over a private influxd, with users of every group and two sites."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.harness.influx import InfluxServer, create_role_layout, find_influxd
from tests.harness.portal import PortalServer

DB = "sitevis"


def portal_available() -> str | None:
    try:
        import django  # noqa: F401
        import rest_framework  # noqa: F401
    except ImportError:
        return "the portal extra is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class Site:
    """The running portal, its influxd, and sessions of users by name."""

    portal: PortalServer
    influx: InfluxServer
    tokens: dict[str, str] = field(default_factory=dict)

    def as_user(self, name: str) -> requests.Session:
        return self.portal.api(self.tokens[name])

    def get(self, name: str, path: str, /, **params: object) -> requests.Response:
        return self.as_user(name).get(f"{self.portal.url}{path}", params=params, timeout=30)


def start_influx(*, rollups: bool = False) -> InfluxServer:
    binary = find_influxd()
    if binary is None:
        pytest.skip("influxd not installed (Debian package influxdb; ./run test installs it)")
    server = InfluxServer(binary)
    server.start()
    create_role_layout(server, DB, rollups=rollups)
    return server


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """Sites lab and far with a box each; users: admin (every site), viewer, operator,
    labadmin and labviewer (site lab only); a read-only token each, `admin-rw` writes."""
    reason = portal_available()
    if reason:
        pytest.skip(reason)
    influx = start_influx()
    portal = PortalServer(influx.url)
    try:
        portal.start()
        portal.user("admin", "admin")
        found = Site(portal, influx)
        found.tokens["admin-rw"] = portal.token("admin", write=True)
        admin = found.as_user("admin-rw")
        for name in ("lab", "far"):
            made = admin.post(f"{portal.url}/api/sites/", json={"name": name}).json()
            admin.post(f"{portal.url}/api/boxes/", json={
                "name": f"{name}-box", "site": made["id"], "address": "198.18.0.1",
                "groups": ["boxes_extra", name]})
        for name, group, sites in (("viewer", "viewer", ()), ("operator", "operator", ()),
                                   ("labadmin", "admin", ("lab",)),
                                   ("labviewer", "viewer", ("lab",))):
            portal.user(name, group, *sites)
        for name in ("admin", "viewer", "operator", "labadmin", "labviewer"):
            found.tokens[name] = portal.token(name)
        found.tokens["labadmin-rw"] = portal.token("labadmin", write=True)
        yield found
    finally:
        portal.cleanup()
        influx.cleanup()


def now_s() -> int:
    return int(time.time())
