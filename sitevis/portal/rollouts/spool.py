"""The root runner's spool: the worker (the portal's user) drops a request, root answers
with the run's events and its result. Only `requests/` is writable by the portal's group,
so nothing root writes can be redirected by the worker.

    <spool>/              root:<portal group> 0750 (the portal role makes it)
      requests/           root:<portal group> 0770  <id>.json from the worker, <id>.cancel
      runs/<id>/          root:<portal group> 0750  runner.json, events.jsonl, result.json
      ansible/            root 0700                 ansible-runner's private dir, artifacts
      runner-id.json      root:<portal group> 0640  {id, pid} of the runner that is up
      restart             root                      asks the runner to restart once idle

The runner gives its plays its id (RUNNER_ID_ENV): a play that would restart the runner
running it (the portal role upgrading its own monitor) asks for `restart` instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTED = "runner.json"      # {token, pid}: the runner took the request
EVENTS = "events.jsonl"      # ansible-runner's events, one JSON object a line
RESULT = "result.json"       # {token, result} or {token, error}: the run ended
RUNNER_ID_ENV = "SITEVIS_PORTAL_RUNNER_ID"


@dataclass(frozen=True)
class Spool:
    root: Path

    @property
    def requests(self) -> Path:
        return self.root / "requests"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def ansible(self) -> Path:
        return self.root / "ansible"

    @property
    def runner_id(self) -> Path:
        return self.root / "runner-id.json"

    @property
    def restart(self) -> Path:
        return self.root / "restart"

    def request(self, rollout: int) -> Path:
        return self.requests / f"{rollout}.json"

    def cancel(self, rollout: int) -> Path:
        return self.requests / f"{rollout}.cancel"

    def run(self, rollout: int) -> Path:
        return self.runs / str(rollout)


def read_json(path: Path, token: str) -> dict[str, Any] | None:
    """The file's object when it is there, whole and of this hand-over (its token)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("token") == token else None


def write_json(path: Path, data: dict[str, Any], mode: int, gid: int = -1) -> None:
    """Atomically (a reader never sees half of it), with this mode and group."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as out:
        if gid != -1:   # root's side only: chown is outside the worker's system calls
            os.fchown(out.fileno(), -1, gid)
        json.dump(data, out, sort_keys=True)
    os.replace(partial, path)
