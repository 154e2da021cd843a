"""The root runner on real parts: the portal's worker as an unprivileged user without new
privileges (as its systemd unit runs it: user nobody here, `setpriv --no-new-privs`) hands
rollouts to a real `sitevis portal runner` (root) through the spool; real ansible-runner
runs them. Its events arrive live, the host matrix is ansible's recap, a cancel reaches
the play, a killed runner fails the rollout clearly, bad requests are refused with their
reason, and the repository's inventory/local (plays that become root) rolls out from the
API through it, recording the commit that ran, where the worker alone fails."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness.influx import stop_process
from tests.harness.tools import tool
from tests.integration.portal.conftest import Site
from tests.integration.portal.rollouts_harness import (
    COLLECTOR_PATHS,
    REPO,
    Rollouts,
    follow,
    kill_orphans,
    matrix_of,
    on_this_machine,
    wait,
)

pytestmark = [pytest.mark.influxd, pytest.mark.ansible, pytest.mark.root]

NOBODY = 65534   # nobody:nogroup
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "--no-new-privs", "--"]


class Handover(Rollouts):
    """Rollouts whose worker is nobody and whose rollouts.yml names a root runner spool."""

    def __init__(self, site: Site, root: Path) -> None:
        super().__init__(site, root)
        self.spool = root / "spool"
        self.spool.mkdir(mode=0o750)
        os.chown(self.spool, 0, NOBODY)
        self.home = root / "home"
        for own in (self.home, self.runner_dir):   # the worker's own, as on a monitor
            own.mkdir()
            os.chown(own, NOBODY, NOBODY)
        self.configure(self.project, {"lab": str(root / "lab.ini"),
                                      "far": str(root / "far.ini")})
        self.runner: subprocess.Popen[bytes] | None = None
        self.runner_log = root / "runner.log"

    @property
    def config(self) -> Path:
        return self.site.portal.config.parent / "rollouts.yml"

    def configure(self, project: Path, inventories: dict[str, str],
                  root_runner: bool = True) -> None:
        self.config.write_text(yaml.safe_dump({
            "project": str(project), "inventories": inventories,
            **({"root_runner": str(self.spool)} if root_runner else {})}))
        self.config.chmod(0o644)

    def start_runner(self) -> None:
        with self.runner_log.open("ab") as log:
            self.runner = subprocess.Popen(
                [tool("sitevis"), "portal", "runner", "--poll", "0.2"],
                env=self.site.portal.env, stdout=log, stderr=log, start_new_session=True)
        wait("the runner to prepare its spool", lambda: (self.spool / "runs").is_dir(), 30)

    def start_unprivileged_worker(self) -> None:
        # Its own home and Ansible tmp, so the worker alone fails where it must: at become.
        self.start_worker(AS_NOBODY, HOME=str(self.home),
                          ANSIBLE_REMOTE_TMP=str(self.home / ".ansible" / "tmp"))


@pytest.fixture(scope="module")
def handover(site: Site) -> Iterator[Handover]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the runner is root, the worker another user")
    root = Path(tempfile.mkdtemp(prefix="sitevis-handover-"))
    root.chmod(0o755)   # the worker (nobody) reads the project and inventories in it
    # The portal's config and database are the worker's, as the role makes them.
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(site.portal.root)], check=True)
    found = Handover(site, root)
    site.tokens.setdefault("operator-rw", site.portal.token("operator", write=True))
    found.start_runner()
    found.start_unprivileged_worker()
    try:
        yield found
    finally:
        for proc in (found.worker, found.runner):
            if proc is not None:
                stop_process(proc, 60)
        kill_orphans(root)
        for log in (found.log, found.runner_log):
            print(log.read_text() if log.exists() else f"(no {log.name})")
        shutil.rmtree(root, ignore_errors=True)


def status_of(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_the_worker_is_unprivileged_and_the_spool_is_roots(handover: Handover):
    assert handover.worker is not None and handover.runner is not None
    pid = handover.worker.pid   # setpriv, then (the same process) the worker
    # setpriv's own command line already names the worker, and it is root until it
    # execs: wait for the exec (the process's binary is no longer setpriv).
    worker = wait("setpriv to exec the worker", lambda: not os.readlink(
        f"/proc/{pid}/exe").endswith("/setpriv") and status_of(pid))
    assert worker["Uid"].split()[0] == str(NOBODY) and worker["NoNewPrivs"] == "1"
    assert status_of(handover.runner.pid)["Uid"].split()[0] == "0"
    modes = {p.name: (p.stat().st_uid, p.stat().st_gid, oct(p.stat().st_mode & 0o777))
             for p in (handover.spool / name for name in ("requests", "runs", "ansible"))}
    assert modes == {"requests": (0, NOBODY, "0o770"), "runs": (0, NOBODY, "0o750"),
                     "ansible": (0, 0, "0o700")}


def test_a_handed_over_rollout_is_live_and_its_matrix_is_ansibles_recap(handover: Handover):
    launched = handover.launch(playbook="site", inventory="lab")
    assert launched.status_code == 202, launched.text
    rollout_id = launched.json()["id"]
    follow(handover, rollout_id)
    done = handover.ended(rollout_id)
    assert done["state"] == "failed" and done["rc"] != 0, done   # lab-box fails on purpose
    # ansible-runner's artifacts are the runner's, in its part of the spool.
    assert done["artifacts"].startswith(str(handover.spool / "ansible")), done["artifacts"]
    matrix = matrix_of(done)
    assert matrix["h1"]["status"] == "changed" and matrix["lab-box"]["status"] == "failed"
    # The run's files the worker read: group-readable for it, nobody else's.
    run = handover.spool / "runs" / str(rollout_id)
    for name in ("runner.json", "events.jsonl", "result.json"):
        info = (run / name).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, NOBODY, 0o640), name


def test_a_cancel_reaches_the_play_in_the_runner(handover: Handover):
    rollout_id = handover.launch(playbook="verify", inventory="far").json()["id"]
    wait("the rollout to run its sleep", lambda: any(
        e["event"] == "runner_on_start" for e in handover.events(rollout_id)["events"]))
    answer = handover.site.as_user("operator-rw").post(f"{handover.url}{rollout_id}/cancel/")
    assert answer.status_code == 200, answer.text
    done = handover.ended(rollout_id, timeout=20)   # the play sleeps 30 s
    assert (done["state"], done["detail"]) == ("cancelled", "cancelled"), done
    assert not (handover.spool / "requests" / f"{rollout_id}.cancel").exists()


def test_a_killed_runner_fails_the_rollout_and_a_new_one_takes_the_next(handover: Handover):
    rollout_id = handover.launch(playbook="verify", inventory="far").json()["id"]
    wait("the rollout to run its sleep", lambda: any(
        e["event"] == "runner_on_start" for e in handover.events(rollout_id)["events"]))
    assert handover.runner is not None
    os.killpg(handover.runner.pid, signal.SIGKILL)   # a crash: no result written
    handover.runner.wait(10)
    kill_orphans(handover.root)
    failed = handover.ended(rollout_id, timeout=30)
    assert failed["state"] == "failed", failed
    assert f"the root runner (pid {handover.runner.pid}) stopped" in failed["detail"]
    handover.start_runner()
    after = handover.launch(playbook="site", inventory="far", check=True, limit="h1")
    assert handover.ended(after.json()["id"])["state"] == "succeeded"


def test_a_stopped_runner_cancels_its_rollout_and_says_so(handover: Handover):
    """SIGTERM (systemd's stop, a restart during an upgrade): the play is cancelled, the
    result written, the rollout cancelled with the reason, the runner gone."""
    rollout_id = handover.launch(playbook="verify", inventory="far").json()["id"]
    wait("the rollout to run its sleep", lambda: any(
        e["event"] == "runner_on_start" for e in handover.events(rollout_id)["events"]))
    assert handover.runner is not None
    handover.runner.send_signal(signal.SIGTERM)
    assert handover.runner.wait(30) == 0
    done = handover.ended(rollout_id, timeout=20)   # the play sleeps 30 s
    assert (done["state"], done["detail"]) == ("cancelled", "the root runner stopped"), done
    handover.start_runner()


def running_its_wait(handover: Handover, rollout_id: int) -> None:
    wait("the rollout to run its wait", lambda: any(
        e["event"] == "runner_on_start" and e["task"] == "Wait while the test restarts something"
        for e in handover.events(rollout_id)["events"]))


def test_a_restarted_worker_leaves_the_play_to_the_runner_and_the_next_follows_it(
        handover: Handover):
    """An upgrade restarts the worker while the root runner plays: the play goes on, the
    next worker follows it from its first event, and the rollout ends as the play did."""
    rollout_id = handover.launch(playbook="remove", inventory="far").json()["id"]
    running_its_wait(handover, rollout_id)
    assert handover.worker is not None
    handover.worker.send_signal(signal.SIGTERM)
    assert handover.worker.wait(30) == 0
    assert handover.get(rollout_id)["state"] == "running"   # not cancelled: still playing
    handover.start_unprivileged_worker()
    done = handover.ended(rollout_id, timeout=60)
    assert (done["state"], done["rc"], done["detail"]) == ("succeeded", 0, ""), done
    counters = [e["counter"] for e in handover.events(rollout_id)["events"]]
    assert counters == list(range(1, max(counters) + 1)), counters   # none lost, none twice
    assert matrix_of(done)["h1"]["status"] == "ok"
    assert f"rollout #{rollout_id}: following it on in the root runner" in \
        handover.log.read_text()


def test_a_runner_asked_to_restart_ends_its_play_first_then_restarts(handover: Handover):
    """What the portal role's handler does when the runner runs the play that upgrades it:
    the spool's restart file. The play ends well; then the runner re-executes itself (same
    pid, a new id for its plays) and takes the next rollout."""
    assert handover.runner is not None
    pid = handover.runner.pid
    before = json.loads((handover.spool / "runner-id.json").read_text())
    assert before["pid"] == pid
    rollout_id = handover.launch(playbook="remove", inventory="far").json()["id"]
    running_its_wait(handover, rollout_id)
    (handover.spool / "restart").write_text("asked by the test\n")
    done = handover.ended(rollout_id, timeout=60)
    assert (done["state"], done["rc"]) == ("succeeded", 0), done
    wait("the runner to restart", lambda: not (handover.spool / "restart").exists() and json.loads(
        (handover.spool / "runner-id.json").read_text())["id"] != before["id"], 30)
    assert handover.runner.poll() is None and json.loads(
        (handover.spool / "runner-id.json").read_text())["pid"] == pid
    assert "restarting as asked (no rollout running)" in handover.runner_log.read_text()
    after = handover.launch(playbook="site", inventory="far", check=True, limit="h1")
    assert handover.ended(after.json()["id"])["state"] == "succeeded"


def test_requests_the_runner_refuses_fail_with_the_reason(handover: Handover):
    """Requests as a compromised worker could write them: the runner runs none and says
    why (the worker would hear it by its token); a link is not even read."""
    token = "0123456789abcdef0123456789abcdef"
    good = {"rollout": 0, "token": token, "playbook": "verify", "inventory": "far",
            "limit": "", "tags": "", "check": True}
    bad = {
        9001: ({"playbook": "../../../tmp/evil"}, "playbook must be one of site, verify"),
        9002: ({"tags": "x -e @/etc/shadow"}, "tags must be comma-separated tag names"),
        9003: ({"limit": "--extra-vars=@/etc/shadow"}, "limit must be hosts, groups"),
        9004: ({"inventory": "/etc/passwd"}, "inventory must be a name"),
        9005: ({"extravars": {"a": 1}}, "a request has exactly the keys"),
        9006: ({"rollout": 1}, "its rollout 1 is not its file name"),
        9007: ({"inventory": "nowhere"}, "no inventory 'nowhere' in"),
    }
    requests_dir = handover.spool / "requests"
    for rollout, (change, _) in bad.items():
        (requests_dir / f"{rollout}.json").write_text(json.dumps(
            {**good, "rollout": rollout, **change}))
    (requests_dir / "9008.json").symlink_to(requests_dir / "9001.json")
    for rollout, (_, reason) in bad.items():
        result = wait(f"the runner's answer to request {rollout}", lambda r=rollout: (
            path := handover.spool / "runs" / str(r) / "result.json").exists() and
            json.loads(path.read_text()))
        assert result["token"] == token and reason in result["error"], (rollout, result)
        # Refused before anything ran: no events file, no result of a run.
        assert "result" not in result
        assert not (handover.spool / "runs" / str(rollout) / "events.jsonl").exists() or \
            rollout == 9007
    wait("the link to be taken away", lambda: not (requests_dir / "9008.json").is_symlink())
    assert not (handover.spool / "runs" / "9008").exists()
    assert "refused request 9008.json: cannot open it" in handover.runner_log.read_text()


@pytest.mark.rollout
def test_the_local_inventory_rolls_out_as_root_only_through_the_runner(handover: Handover):
    """The repository's inventory/local (this machine, plays that become root): `remove`
    in check mode, tag collector_remove, from the API. Through the runner it succeeds;
    the same launch run by the unprivileged worker itself fails. Nothing changes here."""
    secrets = REPO / "inventory" / "local" / ".secrets"
    had_secrets = secrets.exists()
    before = on_this_machine(COLLECTOR_PATHS)
    launch = {"playbook": "remove", "inventory": "local", "check": True,
              "tags": "collector_remove"}
    try:
        handover.configure(REPO, {"local": "inventory/local"})
        through_runner = handover.ended(handover.launch(**launch).json()["id"], timeout=300)
        handover.configure(REPO, {"local": "inventory/local"}, root_runner=False)
        by_worker = handover.ended(handover.launch(**launch).json()["id"], timeout=300)
    finally:
        handover.configure(handover.project, {"lab": str(handover.root / "lab.ini"),
                                              "far": str(handover.root / "far.ini")})
        if not had_secrets:     # generated for this run by the secrets pre-task
            shutil.rmtree(secrets, ignore_errors=True)
    assert (through_runner["state"], through_runner["rc"]) == ("succeeded", 0), through_runner
    # The commit that ran, as root read it from the checkout.
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert through_runner["commit"] == head, through_runner["commit"]
    matrix = matrix_of(through_runner)
    assert set(matrix) == {"localhost"} and matrix["localhost"]["failed"] == 0
    assert matrix["localhost"]["ok"] > 0
    assert by_worker["state"] == "failed", by_worker
    refusals = [e["message"] for e in handover.events(by_worker["id"])["events"]
                if e["status"] in ("failed", "unreachable")]
    assert any("waiting for become success" in m for m in refusals), refusals
    assert on_this_machine(COLLECTOR_PATHS) == before
    print(f"through the runner: {through_runner['duration']:.1f} s, {matrix['localhost']}; "
          f"by the worker alone: {by_worker['state']} "
          f"{[(h['host'], h['status'], h['task']) for h in by_worker['hosts']]}")
