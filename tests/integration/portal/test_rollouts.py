"""Rollouts from the portal on real parts: a live portal, a real `sitevis portal worker`
and real ansible-runner running the throw-away project in rollout_fixtures/ (hosts h1 and
lab-box, a box of the portal, are this machine through ansible_connection=local; the
playbooks only print, sleep and fail, so nothing on this machine changes)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness.influx import stop_process
from tests.harness.tools import tool
from tests.integration.portal.conftest import DB, Site

pytestmark = [pytest.mark.influxd, pytest.mark.ansible]

FIXTURES = Path(__file__).parent / "rollout_fixtures"
REPO = Path(__file__).parents[3]
SECRET = "s3cret-rollout-value"
INVENTORY = ("[all]\nh1 ansible_connection=local\n{extra}\n[all:vars]\n"
             "ansible_python_interpreter={{{{ ansible_playbook_python }}}}\n")


def wait(what: str, found: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Rollouts:
    """The portal with rollouts configured (inventories lab: h1 + lab-box, far: h1) and a
    worker."""

    def __init__(self, site: Site, root: Path) -> None:
        self.site, self.root = site, root
        self.url = f"{site.portal.url}/api/rollouts/"
        self.project = root / "project"
        shutil.copytree(FIXTURES, self.project)
        (root / "lab.ini").write_text(INVENTORY.format(extra="lab-box ansible_connection=local"))
        (root / "far.ini").write_text(INVENTORY.format(extra=""))
        (site.portal.config.parent / "rollouts.yml").write_text(yaml.safe_dump({
            "project": str(self.project),
            "inventories": {"lab": str(root / "lab.ini"), "far": str(root / "far.ini")}}))
        self.runner_dir = root / "runner"
        self.env = {**site.portal.env, "SITEVIS_RUNNER_DIR": str(self.runner_dir)}
        self.log = root / "worker.log"
        site.tokens["operator-rw"] = site.portal.token("operator", write=True)
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        with self.log.open("ab") as log:   # its own session: killed with its playbooks
            self.worker = subprocess.Popen(
                [tool("sitevis"), "portal", "worker", "--poll", "0.3"], env=self.env,
                stdout=log, stderr=log, start_new_session=True)

    def launch(self, user: str = "operator-rw", **body: Any) -> requests.Response:
        return self.site.as_user(user).post(self.url, json=body, timeout=30)

    def get(self, rollout_id: int, user: str = "viewer") -> dict:
        return self.site.get(user, f"/api/rollouts/{rollout_id}/").json()

    def events(self, rollout_id: int, after: int = 0) -> dict:
        return self.site.get("viewer", f"/api/rollouts/{rollout_id}/events/",
                             after=after).json()

    def ended(self, rollout_id: int, timeout: float = 60) -> dict:
        return wait(f"rollout #{rollout_id} to end", lambda: (
            found := self.get(rollout_id))["state"] not in ("queued", "running") and found,
            timeout)


@pytest.fixture(scope="module")
def rollouts(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollouts]:
    found = Rollouts(site, tmp_path_factory.mktemp("rollouts"))
    try:
        yield found
    finally:
        if found.worker is not None:
            stop_process(found.worker, 15)
        print(found.log.read_text() if found.log.exists() else "(no worker log)")


def test_launch_before_a_worker_is_queued_and_refusals_are_clear(rollouts: Rollouts):
    assert rollouts.launch(playbook="site", inventory="nowhere").status_code == 409
    assert "no inventory 'nowhere'" in rollouts.launch(
        playbook="site", inventory="nowhere").json()["detail"]
    assert rollouts.launch(playbook="site", inventory="lab",
                           tags="x -e @/etc/shadow").status_code == 400
    answer = rollouts.site.get("viewer", "/api/rollouts/", sttae="queued")
    assert answer.status_code == 400 and "unknown filters" in answer.text


def test_viewer_cannot_launch_or_cancel(rollouts: Rollouts):
    # Read-only token, and a signed-in browser session (CSRF and all): both 403.
    assert rollouts.launch("viewer", playbook="site", inventory="far").status_code == 403
    session = rollouts.site.portal.login("viewer")
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": rollouts.url}
    assert session.post(rollouts.url, json={"playbook": "site", "inventory": "far"},
                        headers=headers).status_code == 403
    queued = rollouts.launch(playbook="verify", inventory="far", check=True).json()
    assert session.post(f"{rollouts.url}{queued['id']}/cancel/",
                        headers=headers).status_code == 403
    assert rollouts.get(queued["id"])["state"] == "queued"
    # Cancelled before any worker took it: cancelled at once.
    cancel = rollouts.site.as_user("operator-rw").post(f"{rollouts.url}{queued['id']}/cancel/")
    assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled"
    again = rollouts.site.as_user("operator-rw").post(f"{rollouts.url}{queued['id']}/cancel/")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_rollout_live_queue_matrix_cancel_history_and_secrets(rollouts: Rollouts):
    first = rollouts.launch(playbook="site", inventory="lab")
    second = rollouts.launch(playbook="verify", inventory="lab")
    assert first.status_code == second.status_code == 202, first.text
    one, two = first.json()["id"], second.json()["id"]
    assert f"waits for rollout #{one}" in second.json()["message"]
    rollouts.start_worker()

    # Live: events arrive while it runs, by counter, and a reader resumes after the last.
    def second_waits() -> None:
        assert rollouts.get(two)["state"] == "queued"   # one at a time per inventory

    follow(rollouts, one, while_running=second_waits)

    done = rollouts.ended(one)
    assert done["state"] == "failed" and done["rc"] != 0   # lab-box fails on purpose
    assert done["launched_by_name"] == "operator" and done["source"] == "api"
    assert done["commit"].startswith("sitevis ") and done["duration"] > 0
    matrix = matrix_of(done)
    assert set(matrix) == {"h1", "lab-box"}
    assert matrix["h1"]["status"] == "changed" and matrix["lab-box"]["status"] == "failed"
    issues = rollouts.site.get("viewer", "/api/health/issues/", kind="rollout_failed",
                               box="lab-box").json()["results"]
    assert len(issues) == 1 and f"rollout #{one}" in issues[0]["detail"]

    # The second launch ran after the first; cancelled while it runs, the worker lives on.
    wait("the second rollout to run its sleep", lambda: any(
        e["event"] == "runner_on_start" for e in rollouts.events(two)["events"]))
    cancel = rollouts.site.as_user("operator-rw").post(f"{rollouts.url}{two}/cancel/")
    assert cancel.status_code == 200 and cancel.json()["cancel_requested"]
    cancelled = rollouts.ended(two, timeout=20)
    assert cancelled["state"] == "cancelled" and cancelled["ended"]
    assert rollouts.worker is not None and rollouts.worker.poll() is None
    checked = rollouts.launch(playbook="site", inventory="far", check=True, limit="h1")
    after = rollouts.ended(checked.json()["id"])
    assert after["state"] == "succeeded" and after["check"] and after["limit"] == "h1"

    # No secret stored anywhere: events as served, and the database itself.
    served = json.dumps([rollouts.events(i)["events"] for i in (one, two)])
    assert SECRET not in served and "********" in served
    assert "output hidden (no_log)" in served
    database = rollouts.site.portal.root / "state" / "portal.sqlite3"
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT task, message FROM rollouts_rolloutevent").fetchall()
        rows += db.execute("SELECT task, detail FROM rollouts_rollouthost "
                           "JOIN rollouts_rollout ON rollout_id = rollouts_rollout.id").fetchall()
    assert rows and not any(SECRET in (a or "") + (b or "") for a, b in rows)

    # History: who, from where; the annotations in InfluxDB; launches and cancels logged.
    history = rollouts.site.get("viewer", "/api/rollouts/", source="api",
                                launched_by="operator").json()
    assert {one, two, after["id"]} <= {r["id"] for r in history["results"]}
    points = rollouts.site.influx.rows(
        f"SELECT rollout_id, outcome, launched_by FROM rollout WHERE rollout_id = {one} "
        f"OR rollout_id = {two}", DB)
    assert sorted(p["outcome"] for p in points) == ["cancelled", "failed", "started",
                                                    "started"]
    changes = rollouts.site.get("admin", "/api/changes/", object_type="rollouts.rollout",
                                limit=100).json()["results"]
    logged = {(c["action"], c["object_id"], c["user_name"]) for c in changes}
    assert {("create", str(one), "operator"), ("create", str(two), "operator"),
            ("update", str(two), "operator")} <= logged


def follow(rollouts: Rollouts, rollout_id: int,
           while_running: Callable[[], None] = lambda: None) -> list[int]:
    """Read its events page by page as the page does until it ends (`while_running` at
    each page that brought events while it ran); every counter, checked: in order, none
    twice, and pages arrived while it ran."""
    last, seen_running, counters = 0, 0, []
    while (page := rollouts.events(rollout_id, after=last))["state"] in ("queued", "running"):
        if page["events"] and page["state"] == "running":
            seen_running += 1
            while_running()
        counters += [e["counter"] for e in page["events"]]
        last = page["last"]
        time.sleep(0.3)
    counters += [e["counter"] for e in rollouts.events(rollout_id, after=last)["events"]]
    assert seen_running >= 2, "events did not arrive while the rollout ran"
    assert counters == sorted(set(counters)) and len(counters) > 10
    return counters


def matrix_of(done: dict) -> dict[str, dict]:
    """The rollout's host matrix, checked against ansible's own recap (the runner's
    playbook_on_stats event)."""
    stats = recap(Path(done["artifacts"]))
    matrix = {h["host"]: h for h in done["hosts"]}
    for host, row in matrix.items():
        assert (row["ok"], row["changed"], row["failed"], row["skipped"]) == (
            stats["ok"].get(host, 0), stats["changed"].get(host, 0),
            stats["failures"].get(host, 0), stats["skipped"].get(host, 0))
    return matrix


def on_this_machine(paths: list[Path]) -> dict[str, str | bool]:
    """What a rollout in check mode must leave as it was: each path's link target, or
    whether it exists."""
    return {str(p): os.readlink(p) if p.is_symlink() else p.exists() for p in paths}


HEADERS = Path("/lib/modules") / os.uname().release / "build"
COLLECTOR_PATHS = [Path("/etc/systemd/system/sitevis-collector.service"),
                   Path("/opt/sitevis-collector"), Path("/etc/sitevis"),
                   Path("/usr/share/sitevis-collector/bpf"),
                   Path("/var/lib/sitevis-collector/spool")]


@pytest.mark.root
@pytest.mark.rollout
@pytest.mark.parametrize(("playbook", "tags", "watched"), [
    ("site", "kernel_headers", [HEADERS]),
    ("remove", "collector_remove", COLLECTOR_PATHS),
], ids=["site", "remove"])
def test_a_playbook_onto_this_machine_from_the_api(rollouts: Rollouts, playbook: str,
                                                    tags: str, watched: list[Path]):
    """The real project and its inventory/local (this machine, box and monitor): `site`
    (tag kernel_headers) and `remove` (tag collector_remove), in check mode, launched by
    an operator through the API and run by the worker: its events while it runs,
    ansible's recap as the host matrix, the launcher in the history, and nothing changed
    on this machine."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the local inventory's plays become root")
    secrets = REPO / "inventory" / "local" / ".secrets"
    had_secrets = secrets.exists()
    before = on_this_machine(watched)
    config = rollouts.site.portal.config.parent / "rollouts.yml"
    saved = config.read_text()
    config.write_text(yaml.safe_dump({"project": str(REPO),
                                      "inventories": {"local": "inventory/local"}}))
    history_before = {r["id"] for r in rollouts.site.get(
        "viewer", "/api/rollouts/", inventory="local").json()["results"]}
    try:
        if rollouts.worker is None:
            rollouts.start_worker()
        launched = rollouts.launch(playbook=playbook, inventory="local", check=True,
                                   tags=tags)
        assert launched.status_code == 202, launched.text
        rollout_id = launched.json()["id"]
        follow(rollouts, rollout_id)
        done = rollouts.ended(rollout_id, timeout=300)
    finally:
        config.write_text(saved)
        if not had_secrets:     # generated for this run by the secrets pre-task
            shutil.rmtree(secrets, ignore_errors=True)
    assert done["state"] == "succeeded" and done["rc"] == 0, done
    assert (done["playbook"], done["inventory"], done["check"], done["tags"]) == (
        playbook, "local", True, tags)
    assert (done["launched_by_name"], done["source"]) == ("operator", "api")
    matrix = matrix_of(done)
    assert set(matrix) == {"localhost"} and matrix["localhost"]["failed"] == 0
    assert matrix["localhost"]["ok"] > 0
    assert on_this_machine(watched) == before
    history = rollouts.site.get("viewer", "/api/rollouts/", inventory="local").json()
    assert {r["id"] for r in history["results"]} - history_before == {rollout_id}


def kill_orphans(root: Path) -> None:
    """ansible-runner starts ansible-playbook in a session of its own (pexpect): a killed
    worker leaves it running. Its process groups, found by our temporary paths, go too."""
    groups = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(root) in (proc / "cmdline").read_text():
                groups.add(os.getpgid(int(proc.name)))
        except (OSError, ProcessLookupError):
            continue
    for group in groups - {os.getpgid(0)}:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def recap(artifacts: Path) -> dict:
    for path in (artifacts / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        if event.get("event") == "playbook_on_stats":
            return event["event_data"]
    raise AssertionError(f"no playbook_on_stats in {artifacts}")


def test_cli_rollout_is_recorded_and_an_unreachable_portal_only_warns(rollouts: Rollouts):
    token = rollouts.root / "token"
    token.write_text(rollouts.site.tokens["operator-rw"])
    env = {**os.environ, "SITEVIS_PROJECT_DIR": str(rollouts.project),
           "SITEVIS_RUNNER_DIR": str(rollouts.root / "cli-runner"),
           "SITEVIS_PORTAL_URL": rollouts.site.portal.url,
           "SITEVIS_PORTAL_TOKEN_FILE": str(token)}
    command = [tool("sitevis"), "rollout", "-i", str(rollouts.root / "far.ini"), "--limit", "h1"]
    ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "warning" not in ran.stderr
    recorded = rollouts.site.get("viewer", "/api/rollouts/", source="cli").json()["results"]
    assert len(recorded) == 1
    row = recorded[0]
    assert (row["playbook"], row["inventory"], row["limit"], row["state"]) == (
        "site", "far", "h1", "succeeded")
    assert row["launched_by_name"] == "operator" and row["source_ip"] == "127.0.0.1"
    assert [(h["host"], h["status"]) for h in row["hosts"]] == [("h1", "changed")]

    unreachable = {**env, "SITEVIS_PORTAL_URL": "http://127.0.0.1:9"}
    ran = subprocess.run(command, env=unreachable, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "not recorded in the portal" in warnings[0]


def test_pages_launch_for_operators_only_and_live_progress(rollouts: Rollouts):
    portal = rollouts.site.portal
    viewer = portal.login("viewer")
    page = viewer.get(f"{portal.url}/rollouts/")
    assert page.status_code == 200 and 'href="/rollouts/"' in page.text
    assert 'data-form="launch"' not in page.text and "<script>" not in page.text
    refused = viewer.post(f"{portal.url}/rollouts/", data={
        "playbook": "site", "inventory": "far",
        "csrfmiddlewaretoken": viewer.cookies["csrftoken"]},
        headers={"Referer": f"{portal.url}/rollouts/"})
    assert refused.status_code == 403

    operator = portal.login("operator")
    form = operator.get(f"{portal.url}/rollouts/").text
    assert 'data-form="launch"' in form and 'value="far"' in form
    launched = operator.post(f"{portal.url}/rollouts/", data={
        "playbook": "site", "inventory": "far", "limit": "h1", "check": "on",
        "csrfmiddlewaretoken": operator.cookies["csrftoken"]},
        headers={"Referer": f"{portal.url}/rollouts/"}, allow_redirects=False)
    assert launched.status_code == 302, launched.text
    detail_url = f"{portal.url}{launched.headers['Location']}"
    rollout_id = int(detail_url.rstrip("/").rsplit("/", 1)[1])
    if rollouts.worker is None:
        rollouts.start_worker()
    done = rollouts.ended(rollout_id)
    assert done["source"] == "web" and done["launched_by_name"] == "operator"
    detail = viewer.get(detail_url).text
    assert 'data-host="h1"' in detail and 'data-form="cancel"' not in detail
    assert 'hx-get' not in detail.split('id="progress"')[1].split(">")[0]   # ended: no poll
    live = viewer.get(f"{detail_url}live/", params={"after": 3},
                      headers={"HX-Request": "true"}).text
    counters = [int(c) for c in re.findall(r'data-counter="(\d+)"', live)]
    assert counters and min(counters) == 4 and 'hx-swap-oob="beforeend:#events"' in live


def test_a_rollout_of_a_killed_worker_fails_and_frees_its_inventory(rollouts: Rollouts):
    if rollouts.worker is None:
        rollouts.start_worker()
    stuck = rollouts.launch(playbook="verify", inventory="far").json()["id"]
    wait("the rollout to run its sleep", lambda: any(
        e["event"] == "runner_on_start" for e in rollouts.events(stuck)["events"]))
    assert rollouts.worker is not None
    os.killpg(rollouts.worker.pid, signal.SIGKILL)   # no chance to cancel: a crash
    rollouts.worker.wait(10)
    kill_orphans(rollouts.root)
    assert rollouts.get(stuck)["state"] == "running"
    rollouts.start_worker()
    failed = rollouts.ended(stuck, timeout=20)
    assert failed["state"] == "failed" and "stopped before it ended" in failed["detail"]
    after = rollouts.launch(playbook="site", inventory="far", check=True, limit="h1")
    assert rollouts.ended(after.json()["id"])["state"] == "succeeded"
