"""Rollouts from the portal on real parts: a live portal, a real `sitevis portal worker`
and real ansible-runner running the throw-away project in rollout_fixtures/ (hosts h1 and
lab-box, a box of the portal, are this machine through ansible_connection=local; the
playbooks only print, sleep and fail, so nothing on this machine changes)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness.influx import stop_process
from tests.harness.tools import tool
from tests.integration.portal.conftest import DB, Site
from tests.integration.portal.rollouts_harness import (
    COLLECTOR_PATHS,
    HEADERS,
    REPO,
    SECRET,
    Rollouts,
    follow,
    kill_orphans,
    matrix_of,
    on_this_machine,
    wait,
)

pytestmark = [pytest.mark.influxd, pytest.mark.ansible]


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
