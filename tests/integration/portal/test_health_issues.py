"""Health issues on real parts: self-metric points in the collector's schema written to a
private influxd, `sitevis portal health --once --at T` evaluating them, the live API
showing, filtering and moving issues through their lifecycle, the change log keeping it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import yaml

from tests.harness.portal import PortalServer
from tests.harness.tools import tool
from tests.integration.portal.conftest import DB, Site, now_s, portal_available, start_influx

pytestmark = pytest.mark.influxd
# Long enough ago that every step below (10 s apart) is still in the past.
T0 = now_s() - 600
HEALTHY = {"flows_exported": 5, "overflow_events": 0, "ringbuf_lost": 0, "filters_restored": 0,
           "write_errors": 0, "points_rejected": 0, "points_dropped": 0, "spool_bytes": 0,
           "spool_files": 0, "queue_bytes": 0, "interfaces_attached": 1}


def report(site: Site, box: str, at: int, coverage: float = 1.0, **fields: int) -> None:
    """One interval of a box's self-metrics and its interface, as the collector writes."""
    name = box.split("-")[0]
    values = ",".join(f"{k}={v}i" for k, v in {**HEALTHY, **fields}.items())
    kernel = 1000
    lines = [f"sitevis_collector,site={name},box={box} {values} {at}",
             f"iface,site={name},box={box},iface=eth0,dir=ingress packets="
             f"{int(kernel * coverage)}i,bytes=64000i,kernel_packets={kernel}i,"
             f"kernel_bytes=64000i,coverage={coverage} {at}"]
    assert site.influx.write(DB, "\n".join(lines), precision="s") == 204


def evaluate(portal: PortalServer, at: int) -> str:
    return portal.manage("health", "--once", "--at", str(at)).stdout


def issues(site: Site, user: str = "admin", /, **params: object) -> list[dict]:
    answer = site.get(user, "/api/health/issues/", ordering="id", **params)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def post(site: Site, token: str, path: str, /, **body: object) -> tuple[int, dict]:
    answer = site.as_user(token).post(f"{site.portal.url}{path}", json=body, timeout=30)
    return answer.status_code, answer.json()


# Sites lab and far with a box each, users in every group (labviewer: lab only) and their
# tokens, made in one `portal shell` (a process per user would cost seconds each).
# viewer-rw is a write-enabled token the API never gives a viewer: its refusal proves the
# role check on its own.
SETUP = """
import json
from django.contrib.auth import get_user_model
from django.core.management import call_command
from sitevis.portal.accounts import tokens
from sitevis.portal.accounts.models import ApiToken
from sitevis.portal.inventory.models import Box, Site
for name in ("lab", "far"):
    Box.objects.create(name=f"{name}-box", site=Site.objects.create(name=name))
for name, group, sites in (("admin", "admin", []), ("viewer", "viewer", []),
        ("operator", "operator", []), ("labviewer", "viewer", ["--site", "lab"]),
        ("labadmin", "admin", ["--site", "lab"])):
    call_command("createuser", name, "--group", group, "--password-file", PASSWORD, *sites)
made = {}
for token, name, write in (("admin", "admin", True), ("viewer", "viewer", False),
        ("viewer-rw", "viewer", True), ("operator", "operator", False),
        ("operator-rw", "operator", True),
        ("labviewer", "labviewer", False), ("labadmin", "labadmin", True)):
    text, key_id, digest = tokens.new()
    ApiToken.objects.create(user=get_user_model().objects.get(username=name), key_id=key_id,
                            digest=digest, write_enabled=write)
    made[token] = text
print(json.dumps(made))
"""


class ApiPortal(PortalServer):
    """A portal for the API alone: no pages, so no collected static files (seconds of a
    shared CPU)."""

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if args[:1] == ("collectstatic",):
            return subprocess.CompletedProcess(args, 0, "", "")
        return super().manage(*args, check=check)


@contextmanager
def started(portal_class: type[PortalServer], more: str = "",
            **settings: object) -> Iterator[tuple[Site, str]]:
    """A portal over its own influxd with SETUP's sites, users and tokens, and the last line
    `more` (run after SETUP in the same shell) printed."""
    reason = portal_available()
    if reason:
        pytest.skip(reason)
    influx = start_influx()
    portal = portal_class(influx.url, **settings)
    try:
        portal.start()
        script = (SETUP + more).replace("PASSWORD", repr(str(portal.root / "password")))
        lines = portal.manage("shell", "-c", script).stdout.strip().splitlines()
        tokens = lines[-2] if more else lines[-1]
        yield Site(portal, influx, json.loads(tokens)), lines[-1] if more else ""
    finally:
        portal.cleanup()
        influx.cleanup()


_STARTED: list[Site] = []   # test_health_webhooks imports the fixture: pytest sets it up
                            # once per module that holds it, so the first one is reused


@pytest.fixture(scope="session")
def health_site() -> Iterator[Site]:
    """One portal and influxd for both health modules. Two healthy evaluations resolve an
    issue and a webhook gets two attempts, to keep the runs few."""
    if _STARTED:
        yield _STARTED[0]
        return
    try:
        with started(ApiPortal, health={"resolve_after": 2, "webhook_attempts": 2}) as (
                found, _):
            _STARTED.append(found)
            yield found
    finally:
        _STARTED.clear()


@pytest.fixture
def site(health_site: Site) -> Site:
    return health_site


def test_silent_box_opens_one_issue_counted_again_then_resolves_after_healthy_runs(site: Site):
    for at in (T0, T0 + 10, T0 + 20):
        report(site, "lab-box", at)
        report(site, "far-box", at)
    assert "0 findings" in evaluate(site.portal, T0 + 20)
    assert issues(site) == []
    for at in range(T0 + 30, T0 + 80, 10):      # lab-box falls silent after T0 + 20
        report(site, "far-box", at)
    evaluate(site.portal, T0 + 60)
    evaluate(site.portal, T0 + 70)
    found = issues(site)
    assert [(i["box_name"], i["kind"], i["status"], i["count"]) for i in found] == [
        ("lab-box", "silent", "open", 2)]
    assert found[0]["first_seen"] < found[0]["last_seen"]
    assert "50 s ago" in found[0]["detail"]
    for at in (T0 + 80, T0 + 90):     # back: resolve_after (2) healthy runs
        report(site, "lab-box", at)
        report(site, "far-box", at)
        evaluate(site.portal, at)
        if at == T0 + 80:
            assert issues(site, unresolved="true")[0]["healthy_streak"] == 1
    done = issues(site)[0]
    assert (done["status"], done["resolved_by"]) == ("resolved", "auto")
    assert issues(site, unresolved="true") == []


def test_every_rule_finds_its_own_kind(site: Site):
    report(site, "lab-box", T0 + 100)
    report(site, "far-box", T0 + 100)
    report(site, "lab-box", T0 + 110)
    report(site, "far-box", T0 + 110, coverage=0.5, overflow_events=3, ringbuf_lost=2,
           filters_restored=1, points_rejected=4, spool_bytes=50_000)
    evaluate(site.portal, T0 + 110)
    far = {i["kind"]: i for i in issues(site, box="far-box")}
    assert set(far) == {"coverage", "overflow", "ringbuf_lost", "filters_restored",
                        "write_errors", "spool_growing"}
    assert "points_rejected 4" in far["write_errors"]["detail"]
    assert "0 -> 50000" in far["spool_growing"]["detail"]
    assert issues(site, box="lab-box", unresolved="true") == []


def test_operator_acknowledges_and_resolves_viewer_cannot_and_the_change_log_has_it(
        site: Site):
    operator_rw = "operator-rw"
    issue = issues(site, box="far-box", kind="overflow")[0]
    path = f"/api/health/issues/{issue['id']}/acknowledge/"
    code, refused = post(site, "viewer-rw", path, note="mine")
    assert code == 403 and "group" in refused["detail"]
    assert post(site, "operator", path)[0] == 403           # a read-only token
    code, acked = post(site, operator_rw, path, note="table too small, resizing")
    assert code == 200, acked
    assert (acked["status"], acked["acknowledged_by"], acked["note"]) == (
        "acknowledged", "operator", "table too small, resizing")
    assert post(site, operator_rw, path)[0] == 409           # only open issues
    code, done = post(site, operator_rw, f"/api/health/issues/{issue['id']}/resolve/")
    assert (code, done["status"], done["resolved_by"]) == (200, "resolved", "operator")
    log = site.get("admin", "/api/changes/", object_type="health.issue",
                   object_id=str(issue["id"])).json()["results"]
    steps = [(c["action"], c["user_name"], (c["after"] or {}).get("status")) for c in log]
    assert steps[:2] == [("update", "operator", "resolved"),
                         ("update", "operator", "acknowledged")]
    assert steps[-1][0] == "create" and steps[-1][1].startswith("health:")


def test_site_limited_user_sees_only_its_site(site: Site):
    everything = issues(site)
    assert {i["site_name"] for i in everything} == {"lab", "far"}
    assert {i["site_name"] for i in issues(site, "labviewer")} == {"lab"}
    far = next(i for i in everything if i["site_name"] == "far")
    assert site.get("labviewer", f"/api/health/issues/{far['id']}/").status_code == 404
    assert issues(site, "labviewer", site="far") == []


@pytest.mark.parametrize("params", [{"kindd": "silent"}, {"kind": "nonsense"},
                                    {"box_id": "x"}, {"since": "yesterday"}])
def test_unknown_or_malformed_filters_are_refused(site: Site, params: dict):
    assert site.get("viewer", "/api/health/issues/", **params).status_code == 400


def test_filters_and_ordering(site: Site):
    by_count = site.get("admin", "/api/health/issues/", ordering="-count").json()["results"]
    assert by_count[0]["count"] >= by_count[-1]["count"]
    assert {i["kind"] for i in issues(site, kind="coverage")} == {"coverage"}
    assert {i["site_name"] for i in issues(site, site="lab")} == {"lab"}
    assert all(i["status"] == "resolved" for i in issues(site, status="resolved"))


def test_rollout_failed_is_opened_by_another_app_through_open_finding(site: Site):
    code = ("from sitevis.portal.health.lifecycle import open_finding\n"
            "from sitevis.portal.inventory.models import Box\n"
            "box = Box.objects.get(name='lab-box')\n"
            "for _ in range(2): open_finding(box, 'rollout_failed', 'site: 2 tasks failed')\n")
    site.portal.manage("shell", "-c", code)
    [failed] = issues(site, kind="rollout_failed")
    assert (failed["box_name"], failed["count"], failed["detail"]) == (
        "lab-box", 2, "site: 2 tasks failed")
    evaluate(site.portal, T0 + 120)   # no rule judges it: it stays until someone resolves
    assert issues(site, kind="rollout_failed")[0]["status"] == "open"


def test_unreachable_influxdb_is_one_line_and_the_loop_goes_on(site: Site, tmp_path):
    config = yaml.safe_load(site.portal.config.read_text())
    config["influxdb"]["url"] = "http://127.0.0.1:9"
    (tmp_path / "portal.yml").write_text(yaml.safe_dump(config))
    env = {**site.portal.env, "SITEVIS_PORTAL_CONFIG": str(tmp_path / "portal.yml")}
    once = subprocess.run([tool("sitevis"), "portal", "health", "--once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert once.returncode != 0 and "Traceback" not in once.stderr
    assert "evaluation skipped: cannot reach InfluxDB at http://127.0.0.1:9" in once.stderr
    loop = subprocess.Popen([tool("sitevis"), "portal", "health", "--loop", "--every", "0.2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert loop.stderr is not None
        # The loop's own threads try the boxes' refresh and the top lists and series
        # computed ahead (a line each, at most once in 30 s); the second evaluation's line
        # shows the loop went on.
        lines = [loop.stderr.readline() for _ in range(4)]
    finally:
        loop.terminate()
        loop.communicate(timeout=10)
    assert loop.returncode == 0        # SIGTERM: the loop ends between runs
    evaluations = [line for line in lines
                   if line.startswith("health: evaluation skipped: cannot reach InfluxDB")]
    assert len(evaluations) >= 2, lines
    assert all(line in evaluations or line.startswith((
        "health: boxes not refreshed: cannot reach InfluxDB",
        "health: top lists or series not computed: cannot reach InfluxDB"))
        for line in lines), lines


@pytest.mark.parametrize("health, message", [
    ({"silent_intervalz": 3}, "health.silent_intervalz is not a setting"),
    ({"resolve_after": 0}, "health.resolve_after must be at least 1"),
    ({"min_coverage": "high"}, "health.min_coverage must be a number"),
])
def test_bad_health_settings_are_one_line_naming_the_key(site: Site, tmp_path, health: dict,
                                                         message: str):
    config = {**yaml.safe_load(site.portal.config.read_text()), "health": health}
    (tmp_path / "portal.yml").write_text(yaml.safe_dump(config))
    env = {**site.portal.env, "SITEVIS_PORTAL_CONFIG": str(tmp_path / "portal.yml")}
    proc = subprocess.run([tool("sitevis"), "portal", "health", "--once"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
