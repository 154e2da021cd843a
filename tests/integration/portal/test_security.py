"""Who may do what: anonymous, each group, a user limited to one site, expired and
read-only tokens, CSRF, headers, brute-force logins; secrets never shown or logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.harness.portal import PASSWORD, PortalServer
from tests.integration.portal.conftest import Site, portal_available

pytestmark = pytest.mark.influxd

READS = ["/api/sites/", "/api/boxes/", "/api/interfaces/", "/api/status/",
         "/api/flows/top/", "/api/series/traffic/", "/api/packets/", "/api/users/me/"]


@pytest.mark.parametrize("path", [*READS, "/api/changes/", "/api/boxes/1/health/"])
def test_anonymous_gets_nothing(site: Site, path: str):
    answer = requests.get(f"{site.portal.url}{path}", timeout=10)
    assert answer.status_code in (401, 403), answer.text
    assert "results" not in answer.json()


def test_the_schema_and_docs_are_public_and_offline(site: Site):
    docs = requests.get(f"{site.portal.url}/api/docs/", timeout=10)
    assert docs.status_code == 200
    assert "http" not in docs.text.replace(site.portal.url, "").split("<body>")[0]
    assert requests.get(f"{site.portal.url}/api/schema/", timeout=10).status_code == 200


@pytest.mark.parametrize("user", ["viewer", "operator"])
def test_viewers_and_operators_read_but_do_not_edit_objects(site: Site, user: str):
    assert all(site.get(user, path).status_code == 200 for path in READS[:4])
    # An operator may hold a write-enabled token; it still cannot edit what only admins do.
    session = site.portal.api(site.portal.token(user, write=user == "operator"))
    answer = session.post(f"{site.portal.url}/api/sites/", json={"name": "nope"})
    assert answer.status_code == 403
    assert session.delete(f"{site.portal.url}/api/boxes/1/").status_code == 403


def test_viewers_get_no_write_token(site: Site):
    answer = requests.post(f"{site.portal.url}/api/users/tokens/provision/", json={
        "username": "viewer", "password": PASSWORD, "write_enabled": True}, timeout=10)
    assert answer.status_code == 400


def test_read_only_token_cannot_write_even_for_an_admin(site: Site):
    answer = site.as_user("admin").post(f"{site.portal.url}/api/sites/", json={"name": "ro"})
    assert answer.status_code == 403 and "read-only" in answer.text


def test_expired_and_forged_tokens_are_refused(site: Site):
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired = site.portal.token("admin", expires=past)
    assert site.portal.api(expired).get(f"{site.portal.url}/api/sites/").status_code == 401
    forged = site.tokens["admin"][:-4] + "AAAA"
    assert site.portal.api(forged).get(f"{site.portal.url}/api/sites/").status_code == 401
    assert site.portal.api("garbage").get(f"{site.portal.url}/api/sites/").status_code == 401


def test_tokens_are_shown_once_hashed_and_record_their_last_use(site: Site):
    session = site.as_user("admin-rw")
    made = session.post(f"{site.portal.url}/api/users/tokens/",
                        json={"description": "once"}).json()
    assert made["token"].startswith(f"svp_{made['key_id']}_")
    site.portal.api(made["token"]).get(f"{site.portal.url}/api/sites/")
    listed = session.get(f"{site.portal.url}/api/users/tokens/").json()["results"]
    mine = next(t for t in listed if t["id"] == made["id"])
    assert "token" not in mine and mine["last_used"] is not None
    assert made["token"].split("_", 2)[2] not in session.get(
        f"{site.portal.url}/api/users/tokens/{made['id']}/").text
    assert session.delete(f"{site.portal.url}/api/users/tokens/{made['id']}/"
                          ).status_code == 204
    assert site.portal.api(made["token"]).get(f"{site.portal.url}/api/sites/"
                                              ).status_code == 401


def test_a_user_limited_to_a_site_sees_only_it(site: Site):
    assert [s["name"] for s in site.get("labviewer", "/api/sites/").json()["results"]] == [
        "lab"]
    assert [b["name"] for b in site.get("labviewer", "/api/boxes/").json()["results"]] == [
        "lab-box"]
    far_box = site.get("admin", "/api/boxes/", site="far").json()["results"][0]
    assert site.get("labviewer", f"/api/boxes/{far_box['id']}/").status_code == 404
    assert site.get("labviewer", f"/api/boxes/{far_box['id']}/health/").status_code == 404
    # ... and in InfluxDB queries: naming the other site is refused,
    assert site.get("labviewer", "/api/flows/top/", site="far").status_code == 403
    assert site.get("labviewer", "/api/series/traffic/", site="far").status_code == 403
    assert site.get("labviewer", "/api/me/").status_code == 404
    assert site.get("labviewer", "/api/users/me/").json()["sites"] == ["lab"]


def test_a_site_limited_admin_edits_only_its_site(site: Site):
    session = site.as_user("labadmin-rw")
    url = site.portal.url
    far_id = site.get("admin", "/api/sites/", name="far").json()["results"][0]["id"]
    lab_id = site.get("admin", "/api/sites/", name="lab").json()["results"][0]["id"]
    assert session.post(f"{url}/api/boxes/", json={"name": "x", "site": far_id}
                        ).status_code == 400
    assert session.post(f"{url}/api/sites/", json={"name": "new"}).status_code == 403
    made = session.post(f"{url}/api/boxes/", json={"name": "lab-2", "site": lab_id})
    assert made.status_code == 201
    assert session.patch(f"{url}/api/boxes/{made.json()['id']}/", json={"site": far_id}
                         ).status_code == 400
    assert session.get(f"{url}/api/changes/").json()["count"] == 0   # spans every site


def test_site_limit_applies_to_influxdb_queries(site: Site):
    lines = [f"flow,site={s},box={s}-box,iface=eth0,dir=ingress,proto=udp,src=198.18.0.{i},"
             f"dst=198.18.1.1,service=udp/53 bytes={1000 * i}i,packets={i}i"
             for i, s in ((1, "lab"), (2, "far"))]
    assert site.influx.write("sitevis", "\n".join(lines), rp="raw") == 204
    rows = site.get("labviewer", "/api/flows/top/", by="boxes").json()["rows"]
    assert [r["key"]["box"] for r in rows] == ["lab-box"]
    everyone = site.get("viewer", "/api/flows/top/", by="boxes").json()["rows"]
    assert [r["key"]["box"] for r in everyone] == ["far-box", "lab-box"]


def test_session_writes_need_the_csrf_token(site: Site):
    session = site.portal.login("admin")
    url = site.portal.url
    assert session.get(f"{url}/api/users/me/").json()["role"] == "admin"
    refused = session.post(f"{url}/api/sites/", json={"name": "csrf"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    made = session.post(f"{url}/api/users/tokens/", json={"description": "from a browser"},
                        headers={"X-CSRFToken": session.cookies["csrftoken"],
                                 "Referer": f"{url}/"})
    assert made.status_code == 201


def test_security_headers_and_cookie_flags(site: Site):
    answer = requests.get(f"{site.portal.url}/login/", timeout=10)
    headers = answer.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "SameSite=Lax" in headers["Set-Cookie"]


def test_secrets_never_reach_the_log(site: Site):
    log = site.portal.log.read_text()
    assert PASSWORD not in log
    assert all(token.split("_", 2)[2] not in log for token in site.tokens.values())


def test_traffic_queries_are_throttled(tmp_path):
    reason = portal_available()
    if reason:
        pytest.skip(reason)
    portal = PortalServer(traffic_rate="3/min")
    try:
        portal.start()
        portal.user("v", "viewer")
        session = portal.api(portal.token("v"))
        codes = [session.get(f"{portal.url}/api/flows/top/").status_code for _ in range(5)]
        assert codes[-1] == 429 and codes.count(429) == 2, codes
    finally:
        portal.cleanup()


def test_brute_force_login_locks_the_user_and_the_address(tmp_path):
    reason = portal_available()
    if reason:
        pytest.skip(reason)
    portal = PortalServer(login_failures=3, login_lock_seconds=3)
    try:
        portal.start()
        portal.user("target", "admin")

        def provision(password: str) -> int:
            return requests.post(f"{portal.url}/api/users/tokens/provision/", json={
                "username": "target", "password": password}, timeout=10).status_code

        assert [provision(f"guess-{i}") for i in range(3)] == [403] * 3
        assert provision(PASSWORD) == 429            # locked: even the right password
        with pytest.raises(RuntimeError, match="answered 200"):
            portal.login("target")                   # the form refuses too
        import time

        time.sleep(3.5)
        assert provision(PASSWORD) == 201            # the lock expires
    finally:
        portal.cleanup()
