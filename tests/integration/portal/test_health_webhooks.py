"""Webhooks on real parts: a site's webhook configured through the API, a real HTTP
receiver on 127.0.0.1 that fails at first, `sitevis portal health --once --at T` queuing
and delivering signed bodies, every attempt in /api/health/deliveries/."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.portal import test_health_issues as health
from tests.integration.portal.conftest import Site, now_s
from tests.integration.portal.test_health_issues import evaluate, issues, post, report

# The issues module's portal, shared (fixtures are found by name in a test module).
health_site, site = health.health_site, health.site

pytestmark = pytest.mark.influxd
T = now_s() - 300
SECRET = "a secret of at least sixteen characters"
DEAD = "http://127.0.0.1:9/hook"   # nothing listens on discard: connection refused


class Receiver(ThreadingHTTPServer):
    """Records every POST (headers, body); answers the queued codes first, then 200."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((dict(self.headers), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/sitevis"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def hook_site(health_site: Site) -> int:
    """Site `hook` with box hook-box, which never reported yet."""
    code, made = post(health_site, "admin", "/api/sites/", name="hook")
    assert code == 201, made
    assert post(health_site, "admin", "/api/boxes/", name="hook-box", site=made["id"])[0] == 201
    return made["id"]


def test_webhooks_are_for_admins_of_the_site_and_never_show_the_secret(
        site: Site, hook_site: int, receiver: Receiver):
    code, made = post(site, "admin", "/api/health/webhooks/", site=hook_site,
                      url=receiver.url, secret=SECRET)
    assert code == 201, made
    assert "secret" not in made and made["site_name"] == "hook"
    assert post(site, "admin", "/api/health/webhooks/", site=hook_site, url=DEAD,
                secret=SECRET)[0] == 201
    listed = site.get("admin", "/api/health/webhooks/", site="hook").json()["results"]
    assert [w["url"] for w in listed] == [receiver.url, DEAD]
    assert all("secret" not in w for w in listed)
    # In the change log, who made them, without the secret.
    logged = site.get("admin", "/api/changes/", object_type="health.webhook").json()
    assert [(c["action"], c["user_name"], c["after"]["url"]) for c in logged["results"]
            ] == [("create", "admin", DEAD), ("create", "admin", receiver.url)]
    assert SECRET not in json.dumps(logged)
    for user in ("viewer", "operator"):
        assert site.get(user, "/api/health/webhooks/").status_code == 403
        assert site.get(user, "/api/health/deliveries/").status_code == 403
    assert site.get("labadmin", "/api/health/webhooks/").json()["results"] == []
    code, refused = post(site, "labadmin", "/api/health/webhooks/", site=hook_site,
                         url=receiver.url, secret=SECRET)
    assert code == 400 and "not one of your sites" in json.dumps(refused)
    for bad in ({"secret": "short"}, {"url": "ftp://127.0.0.1/x"}, {"url": "not a url"}):
        answer = post(site, "admin", "/api/health/webhooks/",
                      **{"site": hook_site, "url": receiver.url, "secret": SECRET, **bad})
        assert answer[0] == 400, (bad, answer)


def test_signed_deliveries_retried_with_backoff_and_recorded(site: Site, hook_site: int,
                                                            receiver: Receiver):
    receiver.answers = [500]
    evaluate(site.portal, T)               # hook-box silent: opened, first attempt fails
    assert len(receiver.got) == 1
    evaluate(site.portal, T + 5)           # the retry waits webhook_backoff_seconds (10)
    assert len(receiver.got) == 1
    evaluate(site.portal, T + 11)          # due: delivered
    assert len(receiver.got) == 2
    for at in (T + 20, T + 30):            # healthy twice: resolved, delivered at once
        report(site, "hook-box", at)
        evaluate(site.portal, at)
    events = []
    for headers, body in receiver.got:
        assert headers["X-Sitevis-Signature"] == hmac.new(
            SECRET.encode(), body, hashlib.sha256).hexdigest()
        event = json.loads(body)
        assert headers["X-Sitevis-Event"] == event["event"]
        assert event["issue"]["site"] == "hook"    # the far and lab issues went nowhere
        events.append((event["event"], event["issue"]["box"], event["issue"]["kind"]))
    assert events == [("issue.opened", "hook-box", "silent")] * 2 + [
        ("issue.resolved", "hook-box", "silent")]
    assert receiver.got[0][1] == receiver.got[1][1]    # a retry sends the same bytes
    [issue] = issues(site, box="hook-box")
    assert (issue["status"], issue["resolved_by"]) == ("resolved", "auto")

    hooks = {w["url"]: w["id"] for w in site.get("admin", "/api/health/webhooks/").json()[
        "results"]}
    live = site.get("admin", "/api/health/deliveries/", webhook_id=hooks[receiver.url],
                    ordering="id").json()["results"]
    assert [(d["event"], d["outcome"], d["attempts"]) for d in live] == [
        ("issue.opened", "delivered", 2), ("issue.resolved", "delivered", 1)]
    assert [t["status_code"] for t in live[0]["tries"]] == [500, 200]
    assert live[0]["tries"][0]["time"] < live[0]["tries"][1]["time"]
    dead = site.get("admin", "/api/health/deliveries/", webhook_id=hooks[DEAD],
                    ordering="id").json()["results"]
    assert [(d["outcome"], d["attempts"]) for d in dead] == [("failed", 2), ("pending", 1)]
    assert all(t["status_code"] is None and "refused" in t["error"] for t in dead[0]["tries"])
    assert site.get("labadmin", "/api/health/deliveries/").json()["results"] == []

    # 30 days on (webhook_keep_days), the ended deliveries are forgotten with their
    # attempts; the pending one is tried (and fails for good) first, then goes too.
    later = evaluate(site.portal, T + 31 + 30 * 86400)
    assert "ended deliveries older than 30 days forgotten" in later, later
    kept = {d["id"] for d in site.get("admin", "/api/health/deliveries/",
                                      limit=100).json()["results"]}
    assert not kept & {d["id"] for d in live + dead}, kept
