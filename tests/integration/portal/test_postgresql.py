"""The portal on PostgreSQL (Debian's postgresql, a private server on a free port):
migrations, objects, constraints as 400s, and the change log, as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.portal import PortalServer
from tests.harness.postgres import PostgresServer, unusable_reason
from tests.integration.portal.conftest import portal_available

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def portal() -> Iterator[PortalServer]:
    reason = portal_available() or unusable_reason()
    if reason:
        pytest.skip(reason)
    database = PostgresServer()
    server = PortalServer(database=database.database())
    try:
        database.start()
        server.start()
        server.user("admin", "admin")
        yield server
    finally:
        server.cleanup()
        database.cleanup()


def test_objects_constraints_filters_and_change_log_on_postgresql(portal: PortalServer):
    api = portal.api(portal.token("admin", write=True))
    url = portal.url
    site = api.post(f"{url}/api/sites/", json={"name": "pg"}).json()
    box = api.post(f"{url}/api/boxes/", json={"name": "b1", "site": site["id"],
                                              "groups": ["web", "db"]})
    assert box.status_code == 201, box.text
    duplicate = api.post(f"{url}/api/boxes/", json={"name": "b1", "site": site["id"]})
    assert duplicate.status_code == 400
    found = api.get(f"{url}/api/boxes/", params={"group": "db"}).json()["results"]
    assert [b["name"] for b in found] == ["b1"]
    assert api.get(f"{url}/api/boxes/", params={"group": "d"}).json()["count"] == 0
    assert api.patch(f"{url}/api/boxes/{box.json()['id']}/", json={"address": "198.18.0.5"}
                     ).status_code == 200
    changes = api.get(f"{url}/api/changes/", params={"object_type": "inventory.box",
                                                      "ordering": "time"}).json()["results"]
    assert [c["action"] for c in changes] == ["create", "update"]
    assert changes[1]["after"]["address"] == "198.18.0.5"
    assert api.get(f"{url}/api/boxes/", params={"id": "99999999999999999999"}
                   ).status_code == 400
