"""The controller's ansible-runner wrapper, on real ansible-playbook runs."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from sitevis.paths import project_dir
from sitevis.runner import run_playbook
from tests.harness import site_leftovers
from tests.harness.tools import tool

REPO = Path(__file__).parents[3]
PORTAL = "http://127.0.0.1:8000"   # where inventory/local puts the portal
SECRET = "s3cr3t-Pa55-do-not-print"
LOCAL = "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"


@pytest.fixture
def runner_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runner"
    monkeypatch.setenv("SITEVIS_RUNNER_DIR", str(path))
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def play(tasks: str, hosts: str = "all") -> str:
    return f"- hosts: {hosts}\n  gather_facts: false\n  tasks:\n{tasks}"


def test_project_dir_is_the_repository():
    assert project_dir() == REPO


def test_ok_and_changed_tasks_are_counted_per_host(tmp_path: Path, runner_dir: Path):
    playbook = write(tmp_path, "ok.yml", play(
        "    - name: Something that changes\n"
        "      ansible.builtin.command: 'true'\n"
        "      changed_when: true\n"
        "    - name: Something that does not\n"
        "      ansible.builtin.command: 'true'\n"
        "      changed_when: false\n"))
    inventory = write(tmp_path, "hosts", LOCAL)
    result = run_playbook(REPO, str(playbook), inventory=str(inventory))
    assert result.succeeded and result.status == "successful"
    host = result.hosts["localhost"]
    assert (host.ok, host.changed, host.failed, host.status) == (2, 1, 0, "changed")
    assert Path(result.artifact_dir).is_relative_to(runner_dir)


def test_a_failing_task_fails_the_run_and_names_the_cause(tmp_path: Path, runner_dir: Path):
    playbook = write(tmp_path, "fail.yml", play(
        "    - name: Refuse\n"
        "      ansible.builtin.fail:\n"
        "        msg: the box is on fire\n"))
    inventory = write(tmp_path, "hosts", LOCAL)
    result = run_playbook(REPO, str(playbook), inventory=str(inventory))
    assert not result.succeeded
    host = result.hosts["localhost"]
    assert host.status == "failed"
    assert host.messages == ["Refuse: the box is on fire"]


def test_an_unreachable_host_is_reported(tmp_path: Path, runner_dir: Path):
    # A closed port on loopback: ssh is refused at once, no traffic leaves this machine.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    playbook = write(tmp_path, "ping.yml", play(
        "    - name: Ping\n      ansible.builtin.ping:\n"))
    inventory = write(tmp_path, "hosts",
                      LOCAL + f"ghost ansible_host=127.0.0.1 ansible_port={closed_port} "
                      "ansible_connection=ssh ansible_ssh_timeout=5\n")
    result = run_playbook(REPO, str(playbook), inventory=str(inventory))
    assert not result.succeeded
    assert result.hosts["ghost"].status == "unreachable"
    assert result.hosts["localhost"].status == "ok"


def test_check_mode_changes_nothing(tmp_path: Path, runner_dir: Path):
    target = tmp_path / "made-by-ansible"
    playbook = write(tmp_path, "touch.yml", play(
        "    - name: Create a file\n"
        "      ansible.builtin.copy:\n"
        f"        dest: {target}\n"
        "        content: hello\n"
        "        mode: '0644'\n"))
    inventory = write(tmp_path, "hosts", LOCAL)
    result = run_playbook(REPO, str(playbook), inventory=str(inventory), check=True)
    assert result.succeeded
    assert result.hosts["localhost"].changed == 1
    assert not target.exists()


def test_secrets_never_reach_artifacts_or_output(tmp_path: Path, runner_dir: Path):
    # (ansible-core 2.19 prints the msg of a failed fail/assert even under no_log: roles
    # must never template a secret into those messages.)
    playbook = write(tmp_path, "secret.yml", play(
        "    - name: Use a secret\n"
        "      ansible.builtin.command: echo {{ secret }}\n"
        "      changed_when: false\n"
        "      no_log: true\n"
        "    - name: Fail with the secret\n"
        "      ansible.builtin.shell: echo {{ secret }}; exit 3\n"
        "      changed_when: false\n"
        "      no_log: true\n"))
    inventory = write(tmp_path, "hosts", LOCAL)
    result = run_playbook(REPO, str(playbook), inventory=str(inventory),
                          extravars={"secret": SECRET})
    assert not result.succeeded
    assert result.hosts["localhost"].messages == ["Fail with the secret: output hidden (no_log)"]
    assert SECRET not in result.to_json()
    files = [p for p in runner_dir.rglob("*") if p.is_file()]
    assert any(p.name == "stdout" for p in files)
    assert [p for p in files if SECRET in p.read_text(errors="replace")] == []


def test_a_broken_playbook_reports_ansibles_error(tmp_path: Path, runner_dir: Path):
    playbook = write(tmp_path, "broken.yml", "- hosts: all\n  tasks: [this is not a task\n")
    inventory = write(tmp_path, "hosts", LOCAL)
    result = run_playbook(REPO, str(playbook), inventory=str(inventory))
    assert not result.succeeded
    assert result.hosts["(none)"].messages and result.hosts["(none)"].messages[0]


def sitevis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("sitevis"), *args],
                          capture_output=True, text=True, timeout=900)


def our_filters_on_this_machine() -> list[str]:
    """"ifname<TAB>direction<TAB>tcx|clsact|xdp" per sitevis program attached here."""
    out = subprocess.run([tool("sitevis-collector"), "hooks"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


@pytest.mark.root
def test_main_job_on_this_machine_is_idempotent_verified_and_removable(
        tmp_path: Path, runner_dir: Path):
    """The README's main job: the whole site onto this machine (box, monitor, portal),
    twice; verify and status, and verify launched from the portal (its root runner); then
    remove.yml leaves nothing the roles installed, and a second remove changes nothing."""
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root: the rollout installs packages and services")
    installed_before = Path("/etc/sitevis/collector.yml").exists()
    secrets_before = (REPO / "inventory/local/.secrets").exists()
    wheels_in_checkout_before = (REPO / ".cache/wheels").exists()
    before = site_leftovers.present()
    first = sitevis("rollout", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    assert list((Path.home() / ".cache/sitevis/wheels").glob("sitevis_collector-*.whl"))
    assert (REPO / ".cache/wheels").exists() == wheels_in_checkout_before, \
        "the wheel cache must not be written into the checkout"
    second = sitevis("rollout", "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    result = json.loads(second.stdout)
    assert result["succeeded"] is True
    assert {h["changed"] for h in result["hosts"].values()} == {0}
    assert "localhost" in second.stderr  # the summary table goes to stderr with --json
    secrets = [f.read_text().strip() for f in (REPO / "inventory/local/.secrets").iterdir()
               if f.name.endswith("_password")]
    assert len(secrets) >= 3
    artifacts = [f for f in runner_dir.rglob("*") if f.is_file()]
    leaked = [f for f in artifacts for secret in secrets if secret in f.read_text(errors="replace")]
    assert leaked == [], "a generated password reached ansible-runner's artifacts"
    assert not any(secret in first.stdout + first.stderr for secret in secrets)

    verify = sitevis("verify")
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    status = sitevis("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "localhost" in status.stdout
    assert our_filters_on_this_machine(), "the site's collector attached nothing"
    verified = launch_from_the_portal({"playbook": "verify", "inventory": "local"})
    assert (verified["state"], verified["rc"]) == ("succeeded", 0), verified
    assert verified["artifacts"].startswith("/var/lib/sitevis-portal-runner/ansible/")
    portal_upgrades_itself_from_the_portal()
    portal_refuses_to_undo_itself_from_the_portal(tmp_path)

    if installed_before:
        return  # someone's real rollout: leave it in place
    removed = remove_site()
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert our_filters_on_this_machine() == []
    if not secrets_before:   # passwords of a monitor that is gone
        shutil.rmtree(REPO / "inventory/local/.secrets")
    assert site_leftovers.left_since(before) == []
    assert site_leftovers.processes() == []
    again = remove_site()
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap_changed(again.stdout) == 0, again.stdout[-3000:]


def launch_from_the_portal(body: dict, timeout: float = 300) -> dict:
    """A rollout of this machine launched through the API of the portal the rollout put
    here (inventory/local): its worker hands it to the root runner. The rollout at its end."""
    api = portal_api()
    launched = api.post(f"{PORTAL}/api/rollouts/", json=body, timeout=30)
    assert launched.status_code == 202, launched.text
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = api.get(f"{PORTAL}/api/rollouts/{launched.json()['id']}/", timeout=30).json()
        except requests.ConnectionError:   # the rollout restarts the portal
            got = {"state": "running"}
        if got["state"] not in ("queued", "running"):
            return got
        assert time.monotonic() < deadline, got
        time.sleep(1)


def portal_upgrades_itself_from_the_portal() -> None:
    """`site` launched from the portal that changes the portal on its own monitor (its
    configuration, here a line added by hand): the role's handler restarts the worker
    under the rollout (which leaves the play to the root runner and the next worker
    follows it) and asks the runner running the play to restart once it has ended. The
    rollout ends well, the configuration is the role's again, and both restarted."""
    config = Path("/etc/sitevis-portal/portal.yml")
    spool = Path("/var/lib/sitevis-portal-runner")
    worker_pid = Path("/run/sitevis-portal-worker.pid").read_text().strip()
    runner = json.loads((spool / "runner-id.json").read_text())
    config.write_text(config.read_text() + "# changed by hand\n")
    done = launch_from_the_portal({"playbook": "site", "inventory": "local",
                                   "tags": "portal_configure", "limit": "localhost"})
    assert (done["state"], done["rc"]) == ("succeeded", 0), done
    assert done["hosts"][0]["changed"] >= 1, done["hosts"]
    assert "# changed by hand" not in config.read_text()
    assert Path("/run/sitevis-portal-worker.pid").read_text().strip() != worker_pid
    deadline = time.monotonic() + 60
    while (now := json.loads((spool / "runner-id.json").read_text()))["id"] == runner["id"]:
        assert time.monotonic() < deadline, "the root runner did not restart after the rollout"
        time.sleep(1)
    assert now["pid"] == runner["pid"] and not (spool / "restart").exists()


def portal_refuses_to_undo_itself_from_the_portal(tmp_path: Path) -> None:
    """What would pull the portal out from under the rollout running it fails first, in
    one line, and changes nothing: `site` with an inventory that lacks the portal's
    rollout settings (it would turn them off), and `remove` of the portal (check mode
    stays allowed)."""
    import yaml

    bare = tmp_path / "bare"
    (bare / "group_vars").mkdir(parents=True)
    bare.chmod(0o755)
    shutil.copy(REPO / "inventory/local/hosts.yml", bare / "hosts.yml")
    local_vars = yaml.safe_load((REPO / "inventory/local/group_vars/all.yml").read_text())
    (bare / "group_vars/all.yml").write_text(yaml.safe_dump({
        **{k: v for k, v in local_vars.items() if not k.startswith("portal_rollout_")},
        "sitevis_secrets_dir": str(REPO / "inventory/local/.secrets")}))
    rollouts = Path("/etc/sitevis-portal/rollouts.yml")
    config = Path("/etc/sitevis-portal/portal.yml")
    saved, config_before = rollouts.read_text(), config.read_text()
    runner_before = Path("/var/lib/sitevis-portal-runner/runner-id.json").read_text()
    with_bare = yaml.safe_load(saved)
    with_bare["inventories"]["bare"] = str(bare)
    rollouts.write_text(yaml.safe_dump(with_bare))
    try:
        turned_off = launch_from_the_portal({"playbook": "site", "inventory": "bare",
                                             "tags": "portal_configure", "limit": "localhost"})
    finally:
        rollouts.write_text(saved)
    removed = launch_from_the_portal({"playbook": "remove", "inventory": "local",
                                      "tags": "portal_remove", "limit": "localhost"})
    for done, reason in ((turned_off, "would turn that portal's rollouts off"),
                         (removed, "runs in the root runner of the portal it would remove")):
        assert done["state"] == "failed", done
        assert done["hosts"][0]["failed"] == 1 and done["hosts"][0]["changed"] == 0, done
        assert reason in done["hosts"][0]["task"] + portal_failures(done["id"]), done
    assert config.read_text() == config_before
    assert Path("/var/lib/sitevis-portal-runner/runner-id.json").read_text() == runner_before


def portal_failures(rollout_id: int) -> str:
    """The failed events' messages of a rollout, read from the portal's API."""
    events = portal_api().get(f"{PORTAL}/api/rollouts/{rollout_id}/events/", timeout=30)
    return " ".join(e["message"] for e in events.json()["events"] if e["status"] == "failed")


def portal_api() -> requests.Session:
    """The API of the portal the main job put here, as its admin (a fresh write token)."""
    password = (REPO / "inventory/local/.secrets/portal_admin_password").read_text().strip()
    token = requests.post(f"{PORTAL}/api/users/tokens/provision/", json={
        "username": "admin", "password": password, "write_enabled": True,
        "description": "test_runner"}, timeout=30).json()["token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    return api


def remove_site() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("ansible-playbook"), "playbooks/remove.yml", "-e", "sitevis_remove_monitor=true"],
        cwd=REPO, capture_output=True, text=True, timeout=600)


def recap_changed(output: str) -> int:
    """Sum of changed= over the PLAY RECAP lines of ansible-playbook's default output."""
    recap = output[output.rindex("PLAY RECAP"):]
    return sum(int(n) for n in re.findall(r"\bchanged=(\d+)", recap))


def test_sitevis_rollout_exits_nonzero_for_a_failing_host(tmp_path: Path, runner_dir: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    inventory = write(tmp_path, "hosts",
                      "[boxes]\n"
                      f"ghost ansible_host=127.0.0.1 ansible_port={closed_port} "
                      "ansible_connection=ssh ansible_ssh_timeout=5\n")
    proc = sitevis("rollout", "-i", str(inventory), "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["hosts"]["ghost"]["status"] == "unreachable"


PING = "    - name: Ping\n      ansible.builtin.ping:\n"


def test_a_missing_inventory_is_one_line_and_writes_nothing(runner_dir: Path):
    # ansible-runner would store the typo as inventory content in <runner>/inventory/hosts,
    # which every later run without -i would then use.
    proc = sitevis("rollout", "-i", "/nonexistent/inventory")
    assert proc.returncode == 2
    assert proc.stderr == ("sitevis rollout: inventory /nonexistent/inventory: "
                           "no such file or directory\n")
    assert not runner_dir.exists()


def test_a_leftover_runner_inventory_is_never_used(tmp_path: Path, runner_dir: Path):
    (runner_dir / "inventory").mkdir(parents=True)
    (runner_dir / "inventory" / "hosts").write_text(
        "/nonexistent/inventory\nghost ansible_host=127.0.0.1 ansible_connection=local\n")
    playbook = write(tmp_path, "ping.yml", play(PING))
    result = run_playbook(REPO, str(playbook))       # ansible.cfg's inventory: inventory/local
    assert result.succeeded
    assert set(result.hosts) == {"localhost"}
    assert result.inventory == str(REPO / "inventory" / "local")
    assert not (runner_dir / "inventory").exists()
    command = json.loads((Path(result.artifact_dir) / "command").read_text())["command"]
    assert command[command.index("-i") + 1] == str(REPO / "inventory" / "local")


def test_a_limit_that_matches_no_host_fails_in_one_line(runner_dir: Path):
    local = REPO / "inventory" / "local"
    for command in ("rollout", "verify"):
        proc = sitevis(command, "-i", str(local), "--limit", "nosuchhost", "--json")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (f"sitevis {command}: no host matched (inventory {local}, "
                               "--limit nosuchhost): nothing ran\n")
        result = json.loads(proc.stdout)
        assert (result["no_host_matched"], result["succeeded"], result["hosts"]) == (
            True, False, {})


def test_a_play_whose_hosts_match_nothing_is_no_success(tmp_path: Path, runner_dir: Path):
    # ansible-playbook itself exits 0 here ("skipping: no hosts matched").
    playbook = write(tmp_path, "nobody.yml", play(PING, hosts="nosuchgroup"))
    result = run_playbook(REPO, str(playbook), inventory=str(write(tmp_path, "hosts", LOCAL)))
    assert result.rc == 0
    assert result.no_host_matched and not result.succeeded
    assert result.no_host_message().startswith("no host matched (inventory ")
