"""Rollouts from the portal for the tests: a live portal with rollouts configured over the
throw-away project in rollout_fixtures/ (hosts h1 and lab-box, a box of the portal, are this
machine through ansible_connection=local; its playbooks only print, sleep and fail), a
real `sitevis portal worker`, and what the tests read back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.harness.tools import tool
from tests.integration.portal.conftest import Site

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

    def start_worker(self, prefix: Sequence[str] = (), **env: str) -> None:
        """`sitevis portal worker`, after `prefix` (another user: setpriv ...)."""
        with self.log.open("ab") as log:   # its own session: killed with its playbooks
            self.worker = subprocess.Popen(
                [*prefix, tool("sitevis"), "portal", "worker", "--poll", "0.3"],
                env={**self.env, **env}, stdout=log, stderr=log, start_new_session=True)

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
