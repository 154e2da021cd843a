"""The portal's background services on the monitor after `site.yml`: the rollout worker
and the health evaluator run and are enabled; a box whose collector stops gets one
`silent` issue within two collector intervals (plus one evaluation), which resolves by
itself once the collector is back; a webhook receiver on the monitor's loopback (it fails
the first request) gets both events, signed with the webhook's secret, the first one
retried.

The scenario's `portal_health` (molecule.yml) runs the evaluator every collector
interval (2 s), calls a box silent after 2 intervals, resolves after 2 healthy
evaluations and retries a failed delivery 1 s later."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import time
from collections.abc import Iterator

import pytest
import testinfra
from diagnostics import influx_rows
from portal_api import call

DISTRO = os.environ.get("MOLECULE_DISTRO", "12")
MONITOR = f"sitevis-site-monitor-d{DISTRO}"
BOX1 = f"sitevis-site-box1-d{DISTRO}"
# What molecule.yml's portal_health sets (seconds) and the collectors' interval.
INTERVAL, SILENT_INTERVALS, RESOLVE_AFTER = 2, 2, 2
# The receiver: on the monitor's loopback (the evaluator posts from there).
HOOK_PORT = 18090
HOOK_LOG = "/root/molecule-hook.jsonl"
HOOK_PID = "/root/molecule-hook.pid"
SECRET = "molecule-webhook-secret-0123456789"
PORTAL_CLI = ("runuser -u sitevis-portal -- env"
              " SITEVIS_PORTAL_CONFIG=/etc/sitevis-portal/portal.yml"
              " /opt/sitevis-portal/bin/python -m sitevis.portal")

# Answers 500 to the first request, then 200; one JSON line per request (headers, body).
RECEIVER = r"""
import http.server, json, sys, time
port, log = int(sys.argv[1]), sys.argv[2]
seen = [0]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen[0] += 1
        status = 500 if seen[0] == 1 else 200
        with open(log, "a") as out:
            out.write(json.dumps({"n": seen[0], "status": status, "time": time.time(),
                                  "headers": {k.lower(): v for k, v in self.headers.items()},
                                  "body": body.decode()}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
"""


def node(name: str):
    return testinfra.get_host(f"docker://{name}")


def make_token(host, username: str, group: str) -> str:
    """A portal user made with the portal's CLI on the monitor, and its write token."""
    made = host.check_output(f"{PORTAL_CLI} createuser {username} --group {group}")
    password = made.split("password: ", 1)[1].split()[0]
    got = call(host, "/api/users/tokens/provision/", method="POST", body={
        "username": username, "password": password, "description": "molecule",
        "write_enabled": True})
    assert got["status"] == 201, got
    return got["body"]["token"]


def wait_for(what: str, probe, timeout: float, every: float = 0.5):
    """probe() until it returns something true; its last value in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s (last {value!r})"
        time.sleep(every)


@pytest.fixture(scope="module")
def monitor():
    return node(MONITOR)


@pytest.fixture(scope="module")
def admin(monitor) -> str:
    return make_token(monitor, "molecule-admin", "admin")


def received(monitor) -> list[dict]:
    text = monitor.run(f"cat {HOOK_LOG} 2>/dev/null").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def webhook(monitor, admin) -> Iterator[int]:
    """The receiver running on the monitor and a webhook of box1's site pointing at it."""
    monitor.run(f"rm -f {HOOK_LOG}")
    monitor.check_output(f"nohup python3 -c {shlex.quote(RECEIVER)} {HOOK_PORT} {HOOK_LOG} "
                         f">/root/molecule-hook.out 2>&1 & echo $! > {HOOK_PID}")
    wait_for("the receiver listens",
             lambda: f"127.0.0.1:{HOOK_PORT} " in monitor.check_output("ss -ltnH"), 10, 0.2)
    box = call(monitor, f"/api/boxes/?name={BOX1}", admin)["body"]["results"][0]
    made = call(monitor, "/api/health/webhooks/", admin, "POST", {
        "site": box["site"], "url": f"http://127.0.0.1:{HOOK_PORT}/hook", "secret": SECRET})
    assert made["status"] == 201, made
    assert "secret" not in made["body"]
    try:
        yield made["body"]["id"]
    finally:
        call(monitor, f"/api/health/webhooks/{made['body']['id']}/", admin, "DELETE")
        monitor.run(f"kill $(cat {HOOK_PID})")


@pytest.mark.parametrize("service", ["sitevis-portal-worker", "sitevis-portal-health"])
def test_the_portal_services_run(monitor, service):
    unit = monitor.service(service)
    assert unit.is_running and unit.is_enabled
    show = monitor.check_output(f"systemctl show {service} -p User -p NoNewPrivileges")
    assert "User=sitevis-portal" in show and "NoNewPrivileges=yes" in show


def test_the_root_runner_runs_and_the_worker_writes_only_its_requests(monitor):
    unit = monitor.service("sitevis-portal-runner")
    assert unit.is_running and unit.is_enabled
    assert "User=root" in monitor.check_output("systemctl show sitevis-portal-runner -p User")
    writable = monitor.check_output("systemctl show sitevis-portal-worker -p ReadWritePaths")
    assert writable.split("=", 1)[1].split() == [
        "/var/lib/sitevis-portal", "/var/lib/sitevis-portal-runner/requests"], writable
    spool = monitor.check_output("stat -c '%n %U %G %a' /var/lib/sitevis-portal-runner "
                                 "/var/lib/sitevis-portal-runner/requests "
                                 "/var/lib/sitevis-portal-runner/ansible").splitlines()
    assert spool == ["/var/lib/sitevis-portal-runner root sitevis-portal 750",
                     "/var/lib/sitevis-portal-runner/requests root sitevis-portal 770",
                     "/var/lib/sitevis-portal-runner/ansible root root 700"], spool


def silent_issues(monitor, token: str) -> list[dict]:
    got = call(monitor, f"/api/health/issues/?box={BOX1}&kind=silent&unresolved=true", token)
    assert got["status"] == 200, got
    return got["body"]["results"]


def test_a_stopped_collector_opens_an_issue_that_resolves_itself(monitor, admin, webhook):
    box1 = node(BOX1)
    # The boxes reported before this test (an issue from before their first point, during
    # the rollout, is resolved by now or within a few evaluations).
    wait_for("no open silent issue of box1 before the test",
             lambda: not silent_issues(monitor, admin), 30)
    box1.check_output("systemctl stop sitevis-collector")
    stopped = time.monotonic()
    try:
        # Silent after SILENT_INTERVALS intervals without a point, seen at the next
        # evaluation (every INTERVAL); a few seconds for the loaded CI machine.
        opened = wait_for("a silent issue of box1",
                          lambda: silent_issues(monitor, admin),
                          SILENT_INTERVALS * INTERVAL + INTERVAL + 6)
        took = time.monotonic() - stopped
        assert len(opened) == 1, opened
        issue = opened[0]
        assert (issue["kind"], issue["status"], issue["box_name"]) == ("silent", "open", BOX1)
        time.sleep(INTERVAL)   # further evaluations count it again, never open another
        assert [i["id"] for i in silent_issues(monitor, admin)] == [issue["id"]]
    finally:
        box1.check_output("systemctl start sitevis-collector")
    print(f"silent issue {issue['id']} open {took:.1f} s after the collector stopped")

    def resolved() -> dict | None:
        got = call(monitor, f"/api/health/issues/{issue['id']}/", admin)["body"]
        return got if got["status"] == "resolved" else None

    # The collector's start (BCC compiles its programs), its first interval, then
    # RESOLVE_AFTER healthy evaluations.
    done = wait_for("the issue resolved by itself", resolved, 120, 1)
    assert done["resolved_by"] == "auto"
    assert not silent_issues(monitor, admin)

    def both_delivered() -> list[dict] | None:
        ours = [r for r in received(monitor)
                if json.loads(r["body"])["issue"]["id"] == issue["id"]]
        events = {json.loads(r["body"])["event"] for r in ours if r["status"] == 200}
        return ours if events == {"issue.opened", "issue.resolved"} else None

    ours = wait_for("both deliveries at the receiver", both_delivered, 20)
    requests = received(monitor)
    for request in requests:   # every request signed with the webhook's secret
        expected = hmac.new(SECRET.encode(), request["body"].encode(), hashlib.sha256)
        assert hmac.compare_digest(request["headers"]["x-sitevis-signature"],
                                   expected.hexdigest()), request
        assert request["headers"]["x-sitevis-event"] == json.loads(request["body"])["event"]
    # The first request was answered 500 and its delivery came again, then got 200.
    first = requests[0]
    assert first["status"] == 500
    again = [r for r in requests[1:] if r["headers"]["x-sitevis-delivery"]
             == first["headers"]["x-sitevis-delivery"]]
    assert again and again[0]["status"] == 200 and again[0]["body"] == first["body"]
    opened_tries = [r for r in ours if json.loads(r["body"])["event"] == "issue.opened"]
    assert [r["status"] for r in opened_tries] == [500, 200], opened_tries
    resolved_tries = [r for r in ours if json.loads(r["body"])["event"] == "issue.resolved"]
    assert [r["status"] for r in resolved_tries] == [200]
    body = json.loads(resolved_tries[0]["body"])["issue"]
    assert (body["box"], body["kind"], body["status"], body["resolved_by"]) == (
        BOX1, "silent", "resolved", "auto")
    # The portal recorded the attempts too.
    deliveries = call(monitor, f"/api/health/deliveries/?issue_id={issue['id']}", admin)
    outcomes = sorted((d["event"], d["outcome"], d["attempts"])
                      for d in deliveries["body"]["results"])
    assert outcomes == [("issue.opened", "delivered", 2), ("issue.resolved", "delivered", 1)]


def recap(monitor, artifacts: str) -> dict[str, dict[str, int]]:
    """Ansible's PLAY RECAP from the run's stdout in its artifact directory."""
    out = monitor.check_output(f"cat {shlex.quote(artifacts)}/stdout")
    rows = {}
    for line in out.split("PLAY RECAP", 1)[1].splitlines():
        if " : " not in line:
            continue
        host, counts = line.split(" : ", 1)
        rows[host.strip()] = {k: int(v) for k, v in
                              (pair.split("=") for pair in counts.split())}
    assert rows, out[-2000:]
    return rows


def test_a_rollout_launched_from_the_api(monitor, admin):
    """`verify` launched by an operator through the API, run by the portal's worker on
    the monitor against the inventory converge.yml wrote there: the monitor targets
    itself (ansible_connection=local), the boxes are reached over SSH; verify's box tasks
    run on the monitor (delegate_to), reading their data from InfluxDB."""
    operator = make_token(monitor, "molecule-operator", "operator")
    launched = call(monitor, "/api/rollouts/", operator, "POST",
                    {"playbook": "verify", "inventory": "molecule-site"})
    assert launched["status"] == 202, launched
    rollout = launched["body"]["id"]
    assert launched["body"]["state"] == "queued"
    # Progress while it runs: events by counter, each page after the last one seen.
    counters: list[int] = []
    pages_while_running = 0
    state = "queued"
    deadline = time.monotonic() + 300
    while state in ("queued", "running"):
        assert time.monotonic() < deadline, f"rollout #{rollout} still {state}"
        page = call(monitor, f"/api/rollouts/{rollout}/events/?after="
                    f"{counters[-1] if counters else 0}", operator)["body"]
        state = page["state"]
        new = [e["counter"] for e in page["events"]]
        if new and state == "running":
            pages_while_running += 1
        counters += new
        time.sleep(0.3)
    assert counters == sorted(set(counters)) and counters, counters
    assert pages_while_running >= 2, (pages_while_running, counters)
    done = call(monitor, f"/api/rollouts/{rollout}/", operator)["body"]
    assert (done["state"], done["rc"]) == ("succeeded", 0), done
    # Run by the root runner, the worker handing it over (its artifacts are root's).
    assert done["artifacts"].startswith("/var/lib/sitevis-portal-runner/ansible/"), done
    # The host matrix is ansible's recap.
    matrix = {h["host"]: h for h in done["hosts"]}
    expected = recap(monitor, done["artifacts"])
    assert set(matrix) == set(expected) == {MONITOR, BOX1, BOX1.replace("box1", "box2")}
    for host, counts in expected.items():
        row = matrix[host]
        assert (row["ok"], row["changed"], row["failed"], row["skipped"]) == (
            counts["ok"], counts["changed"], counts["failures" if "failures" in counts
                                                    else "failed"], counts["skipped"]), host
        assert row["unreachable"] == (counts["unreachable"] > 0)
    # History: who launched it, from where; the change log has the launch.
    history = call(monitor, "/api/rollouts/?limit=100", operator)["body"]["results"]
    row = next(r for r in history if r["id"] == rollout)
    assert (row["launched_by_name"], row["source"], row["playbook"], row["inventory"]) == (
        "molecule-operator", "api", "verify", "molecule-site")
    assert row["source_ip"] == "127.0.0.1"
    changes = call(monitor, f"/api/changes/?object_type=rollouts.rollout&object_id={rollout}",
                   admin)["body"]["results"]
    assert [(c["action"], c["user_name"]) for c in changes] == [("create", "molecule-operator")]
    # Its annotations in InfluxDB, written by the portal's WRITE user (InfluxDB's auth is
    # on: the READ user the portal queries with would be refused), read as Grafana reads.
    points = influx_rows(monitor, url="http://127.0.0.1:8086", q=(
        f"SELECT outcome, playbook, launched_by, rc FROM rollout WHERE rollout_id = {rollout}"))
    assert sorted((p["outcome"], p["playbook"], p["launched_by"]) for p in points) == [
        ("started", "verify", "molecule-operator"), ("succeeded", "verify", "molecule-operator")]
    print(f"rollout #{rollout}: {len(counters)} events, {pages_while_running} pages while "
          f"running, {done['duration']:.1f} s")


def launch_to_end(monitor, token: str, **body) -> dict:
    """A rollout launched through the API, at its end; failed and unreachable events are
    in its "failures" (shown by a failing assertion)."""
    launched = call(monitor, "/api/rollouts/", token, "POST", body)
    assert launched["status"] == 202, launched
    rollout = launched["body"]["id"]
    done = wait_for(f"rollout #{rollout} to end", lambda: (
        got := ended_or_none(monitor, rollout, token)) and got, 300, 1)
    done["failures"] = [(e["host"], e["task"], e["message"]) for e in call(
        monitor, f"/api/rollouts/{rollout}/events/", token)["body"]["events"]
        if e["status"] in ("failed", "unreachable")]
    return done


def ended_or_none(monitor, rollout: int, token: str) -> dict | None:
    """The rollout when it has ended; None while it runs or the portal is restarting (a
    rollout that upgrades the portal restarts it)."""
    try:
        got = call(monitor, f"/api/rollouts/{rollout}/", token)["body"]
    except AssertionError:   # connection refused: the call's python exited non-zero
        return None
    return got if isinstance(got, dict) and got.get("state") not in (
        None, "queued", "running") else None


def only_host(monitor, done: dict, host: str) -> dict:
    """The rollout succeeded on that host alone; its row, checked against the recap."""
    matrix = {h["host"]: h for h in done["hosts"]}
    assert (done["state"], done["rc"]) == ("succeeded", 0), (done, matrix)
    assert set(matrix) == {host}, matrix
    row = matrix[host]
    assert row["ok"] > 0 and row["failed"] == 0 and not row["unreachable"], row
    expected = recap(monitor, done["artifacts"])[host]
    assert (row["ok"], row["changed"]) == (expected["ok"], expected["changed"])
    return row


def test_a_play_that_becomes_root_on_the_monitor_runs_from_the_api(monitor):
    """`remove` in check mode, tag portal_remove, limited to the monitor: its plays become
    root there (the worker alone cannot: no new privileges, no sudo); the root runner runs
    them. Check mode: the portal and its services are all still there afterwards."""
    operator = make_token(monitor, "molecule-operator-root", "operator")
    done = launch_to_end(monitor, operator, playbook="remove", inventory="molecule-site",
                         limit=MONITOR, tags="portal_remove", check=True)
    row = only_host(monitor, done, MONITOR)
    assert row["changed"] > 0, row   # what remove would do (stop, delete): check mode
    for service in ("sitevis-portal", "sitevis-portal-worker", "sitevis-portal-runner"):
        assert monitor.service(service).is_running, service
    assert monitor.file("/opt/sitevis-portal/bin/python").exists


SSH_ROLLOUT = {"playbook": "site", "inventory": "molecule-site", "limit": BOX1,
               "tags": "collector_configure", "check": True}


def test_a_rollout_from_the_portal_reaches_a_box_over_ssh(monitor):
    """`site` in check mode, tag collector_configure, limited to box1: the root runner on
    the monitor reaches the box over SSH (root's key, converge.yml), as on a real site,
    and finds it as the converge left it (nothing to change)."""
    operator = make_token(monitor, "molecule-operator-ssh", "operator")
    done = launch_to_end(monitor, operator, **SSH_ROLLOUT)
    assert done["artifacts"].startswith("/var/lib/sitevis-portal-runner/"), done
    assert only_host(monitor, done, BOX1)["changed"] == 0, done


def test_with_the_root_runner_off_the_sandboxed_worker_reaches_a_box_over_ssh(monitor):
    """The same rollout with `root_runner` taken out of rollouts.yml (read at each
    launch): the worker runs it itself, under its unit's sandbox (no new privileges,
    system-call filter, read-only system), over SSH with its own key."""
    operator = make_token(monitor, "molecule-operator-worker", "operator")
    config = "/etc/sitevis-portal/rollouts.yml"
    monitor.check_output(f"cp -p {config} {config}.saved && sed -i '/^root_runner:/d' {config}")
    try:
        done = launch_to_end(monitor, operator, **SSH_ROLLOUT)
    finally:
        monitor.check_output(f"mv {config}.saved {config}")
    assert done["artifacts"].startswith("/var/lib/sitevis-portal/runner/"), done
    assert only_host(monitor, done, BOX1)["changed"] == 0, done


def test_a_rollout_from_the_portal_upgrades_the_portal_running_it(monitor):
    """`site`, tag portal_configure, limited to the monitor, after its portal.yml was
    changed by hand: the role's handler restarts the portal's services under the rollout.
    The worker (systemd's restart) leaves the play to the root runner and the next worker
    follows it on; the runner is asked to restart once the play has ended, and does (same
    pid, a new id). The rollout ends well and the configuration is the role's again."""
    operator = make_token(monitor, "molecule-operator-upgrade", "operator")
    config = "/etc/sitevis-portal/portal.yml"
    runner_id = "/var/lib/sitevis-portal-runner/runner-id.json"
    worker_pid = monitor.check_output("systemctl show -p MainPID --value sitevis-portal-worker")
    runner = json.loads(monitor.file(runner_id).content_string)
    monitor.check_output(f"echo '# changed by hand' >> {config}")
    done = launch_to_end(monitor, operator, playbook="site", inventory="molecule-site",
                         limit=MONITOR, tags="portal_configure")
    assert only_host(monitor, done, MONITOR)["changed"] >= 1, done
    assert "# changed by hand" not in monitor.file(config).content_string
    assert monitor.check_output(
        "systemctl show -p MainPID --value sitevis-portal-worker") != worker_pid
    restarted = wait_for("the root runner to restart after the rollout", lambda: (
        now := json.loads(monitor.file(runner_id).content_string))["id"] != runner["id"]
        and now, 60, 1)
    assert restarted["pid"] == runner["pid"], (runner, restarted)
    assert monitor.check_output(
        "systemctl show -p MainPID --value sitevis-portal-runner") == str(runner["pid"])
    assert not monitor.file("/var/lib/sitevis-portal-runner/restart").exists
    for service in ("sitevis-portal", "sitevis-portal-worker", "sitevis-portal-runner"):
        assert monitor.service(service).is_running, service

