"""Run playbooks with ansible-runner and reduce their events to a per-host result."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from sitevis.inventory import inventory_path
from sitevis.paths import runner_dir

KEEP_ARTIFACT_DIRS = 10
# ansible-playbook's words when an inventory and --limit select no host at all.
NO_HOSTS_ERROR = "leaves us with no hosts to target"


@dataclass
class HostState:
    """What one host did in a run, updated event by event."""

    name: str
    task: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    messages: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


@dataclass
class RunResult:
    playbook: str
    status: str                    # ansible-runner's: successful | failed | timeout | canceled
    rc: int
    hosts: dict[str, HostState]
    artifact_dir: str
    inventory: str = ""
    limit: str | None = None
    # No host ran a task: a mistyped --limit or group must not pass for a clean run.
    no_host_matched: bool = False

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and bool(self.hosts) and not self.no_host_matched and all(
            h.status not in ("failed", "unreachable") for h in self.hosts.values()
        )

    def no_host_message(self) -> str:
        limit = f", --limit {self.limit}" if self.limit else ""
        return f"no host matched (inventory {self.inventory}{limit}): nothing ran"

    def to_json(self) -> str:
        return json.dumps(
            {
                "playbook": self.playbook,
                "inventory": self.inventory,
                "limit": self.limit,
                "no_host_matched": self.no_host_matched,
                "status": self.status,
                "rc": self.rc,
                "succeeded": self.succeeded,
                "artifact_dir": self.artifact_dir,
                "hosts": {
                    name: {**asdict(h), "status": h.status} for name, h in self.hosts.items()
                },
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """The result as to_json wrote it (the portal's root runner hands it over so)."""
        hosts = {name: HostState(**{k: v for k, v in host.items() if k != "status"})
                 for name, host in data["hosts"].items()}
        return cls(playbook=data["playbook"], status=data["status"], rc=data["rc"],
                   hosts=hosts, artifact_dir=data["artifact_dir"],
                   inventory=data["inventory"], limit=data["limit"],
                   no_host_matched=data["no_host_matched"])


EventListener = Callable[[dict[str, HostState], str], None]


class EventReducer:
    """Folds ansible-runner events into HostState; tells a listener after each change."""

    def __init__(self, listener: EventListener | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.hosts: dict[str, HostState] = {}
        self.listener = listener
        self.on_event = on_event   # every raw event (the portal's worker stores them)

    def _host(self, name: str) -> HostState:
        return self.hosts.setdefault(name, HostState(name))

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host_name = data.get("host")
        if self.on_event:
            self.on_event(event)
        if (host_name and kind.startswith("runner_on_")) or kind == "playbook_on_stats":
            self._apply(kind, data)
            if self.listener:
                self.listener(self.hosts, kind)
        return True  # keep every event in the artifacts

    def _apply(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "playbook_on_stats":
            # Final numbers from Ansible's own recap win over our running tally.
            for key, attr in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                              ("skipped", "skipped")):
                for name, count in (data.get(key) or {}).items():
                    setattr(self._host(name), attr, count)
            for name in data.get("dark") or {}:
                self._host(name).unreachable = True
            return
        host = self._host(data["host"])
        task = data.get("task", "")
        result = data.get("res") or {}
        if kind == "runner_on_start":
            host.task = task
        elif kind == "runner_on_ok":
            host.ok += 1
            host.changed += bool(result.get("changed"))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            host.failed += 1
            host.messages.append(f"{task}: {_message(result)}")
        elif kind == "runner_on_skipped":
            host.skipped += 1
        elif kind == "runner_on_unreachable":
            host.unreachable = True
            host.messages.append(f"{task}: unreachable: {_message(result)}")


def _message(result: dict[str, Any]) -> str:
    # no_log results carry only the censored marker; never dig into them.
    if result.get("_ansible_no_log") or "censored" in result:
        return "output hidden (no_log)"
    text = result.get("msg") or result.get("stderr") or result.get("module_stderr") or ""
    return " ".join(str(text).split())[:500]


def run_playbook(
    project: Path,
    playbook: str,
    inventory: str | None = None,
    limit: str | None = None,
    tags: str | None = None,
    check: bool = False,
    extravars: dict[str, Any] | None = None,
    listener: EventListener | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> RunResult:
    """Run playbooks/<playbook> (or an absolute path) from the project with ansible-runner.

    The inventory (default: ansible.cfg's) must exist (InventoryError otherwise, before
    anything is written). Never raises on a failed play: the result says what each host did.
    `on_event` sees every raw event; `cancel` returning True stops the run (status canceled).
    """
    inventory_file = inventory_path(project, inventory)
    private = runner_dir(project)
    private.mkdir(parents=True, exist_ok=True)
    # ansible-runner uses <private>/inventory whenever it exists, over ansible.cfg's and
    # run after run: never keep one (older versions wrote a mistyped -i there).
    shutil.rmtree(private / "inventory", ignore_errors=True)
    cmdline = []
    if check:
        cmdline.append("--check")
    if tags:
        cmdline += ["--tags", tags]
    reducer = EventReducer(listener, on_event)
    _put_interpreter_bin_on_path()
    # Extra vars may hold secrets. Given to ansible-runner they land in the recorded
    # command line (artifacts/<id>/command); a private file that is removed afterwards
    # keeps them out of every artifact.
    with tempfile.TemporaryDirectory(prefix="sitevis-vars-") as vars_dir:
        if extravars:
            vars_file = Path(vars_dir) / "extravars.json"
            vars_file.touch(mode=0o600)
            vars_file.write_text(json.dumps(extravars))
            cmdline += ["-e", f"@{vars_file}"]
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(project),      # cwd of ansible-playbook, so ansible.cfg applies
            playbook=str(_playbook_path(project, playbook)),
            inventory=str(inventory_file),  # an existing path: never taken as content
            limit=limit,
            cmdline=" ".join(cmdline) or None,
            event_handler=reducer,
            cancel_callback=cancel,
            suppress_env_files=True,       # env/ files would store extravars and passwords
            rotate_artifacts=KEEP_ARTIFACT_DIRS,
            quiet=True,
            envvars={"ANSIBLE_FORCE_COLOR": "0"},
        )
    output = _read(runner.stdout)
    no_host = not reducer.hosts and (runner.rc == 0 or NO_HOSTS_ERROR in output)
    if not reducer.hosts and not no_host:
        # Ansible died before any play ran (bad inventory, syntax error): surface its output.
        reducer.hosts["(none)"] = HostState("(none)", failed=1, messages=[_tail(output)])
    return RunResult(
        playbook=playbook,
        status=runner.status,
        rc=runner.rc,
        hosts=reducer.hosts,
        artifact_dir=str(runner.config.artifact_dir),
        inventory=str(inventory_file),
        limit=limit,
        no_host_matched=no_host,
    )


def _playbook_path(project: Path, playbook: str) -> Path:
    path = Path(playbook)
    return (path if path.is_absolute() else project / "playbooks" / path).resolve()


def _put_interpreter_bin_on_path() -> None:
    """ansible-runner looks ansible-playbook up on PATH: make it find our venv's copy, so
    `sitevis` works without an activated venv."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, path])


def _read(stdout: Any) -> str:
    try:
        return str(stdout.read())
    except (AttributeError, OSError, ValueError):
        return ""


def _tail(text: str, lines: int = 5) -> str:
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "ansible-playbook failed before running a play"
