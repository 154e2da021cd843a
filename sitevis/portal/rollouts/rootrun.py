"""The root runner (`sitevis portal runner`, root): runs the rollouts the worker hands it
through the spool, so a play may become root on the monitor itself (an inventory with
`ansible_connection=local`) while the worker keeps its sandbox and no sudo. It runs only
the project's own playbooks against the inventories of rollouts.yml (read by root), with
a limit, tags and --check that it checks again (request.py); nothing else reaches it.
Asked to restart (spool.restart) it takes nothing new and restarts once its rollouts end,
so a play may upgrade the runner that runs it."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sitevis.portal.config import ConfigError
from sitevis.portal.rollouts.client import git_head
from sitevis.portal.rollouts.conf import RolloutConfig
from sitevis.portal.rollouts.request import MAX_BYTES, TOKEN_PATTERN, RequestError, RunRequest
from sitevis.portal.rollouts.spool import EVENTS, RESULT, STARTED, Spool, write_json

log = logging.getLogger("sitevis.portal.runner")
KEEP_RUNS = 20


class SpoolError(Exception):
    """A spool root cannot trust (one line)."""


def _trusted_dir(path: Path) -> os.stat_result:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise SpoolError(f"{path}: no such directory (the portal role makes it)") from None
    if not stat.S_ISDIR(info.st_mode):
        raise SpoolError(f"{path}: not a directory")
    if info.st_uid != 0 or info.st_mode & 0o022:
        raise SpoolError(f"{path}: must be owned by root and writable by root alone "
                         f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})")
    return info


def prepare(spool: Spool) -> int:
    """Check the spool, make its directories; the portal's group id (the spool's group)."""
    gid = _trusted_dir(spool.root).st_gid
    for path, mode, group in ((spool.requests, 0o770, gid), (spool.runs, 0o750, gid),
                              (spool.ansible, 0o700, 0)):
        if not path.is_symlink() and not path.exists():
            path.mkdir(mode=mode)
        if path.is_symlink() or not path.is_dir() or path.lstat().st_uid != 0:
            raise SpoolError(f"{path}: must be a directory owned by root")
        os.chown(path, 0, group)
        path.chmod(mode)
    return gid


def read_raw(path: Path) -> bytes:
    """A request file of the worker's: never followed through a link, never large."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise RequestError(f"cannot open it: {err.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RequestError("not a regular file")
        return file.read(MAX_BYTES + 1)


def parse_request(path: Path, raw: bytes) -> RunRequest:
    request = RunRequest.parse(raw)
    if path.name != f"{request.rollout}.json":
        raise RequestError(f"its rollout {request.rollout} is not its file name")
    return request


def _token_in(raw: bytes) -> str:
    """The token of a refused request, when one can be read from it at all."""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and re.fullmatch(TOKEN_PATTERN, token) else ""


class RootRunner:
    """Takes requests from the spool, runs each in a thread of its own (one worker runs
    one rollout at a time; several workers may hand over several)."""

    def __init__(self, spool: Spool, load_config: Callable[[], RolloutConfig],
                 run_playbook: Callable[..., Any]) -> None:
        self.spool = spool
        self.load_config = load_config
        self.run_playbook = run_playbook
        self.gid = prepare(spool)
        self.stopping = threading.Event()
        self.active: dict[int, threading.Thread] = {}
        self.ident = secrets.token_hex(16)   # its plays' RUNNER_ID_ENV
        write_json(spool.runner_id, {"id": self.ident, "pid": os.getpid()}, 0o640, self.gid)

    def _forget_ended(self) -> None:
        self.active = {k: t for k, t in self.active.items() if t.is_alive()}

    def restart_due(self) -> bool:
        """Asked to restart, and no rollout of its own still running."""
        self._forget_ended()
        return not self.active and self.spool.restart.exists()

    def poll(self) -> list[int]:
        """Take every waiting request; the rollout ids taken. None while a restart is
        asked for: the worker waits (PICKUP_S) for the restarted runner."""
        self._forget_ended()
        if self.spool.restart.exists():
            return []
        taken = []
        for path in sorted(self.spool.requests.glob("*.json")):
            stem = path.name.removesuffix(".json")
            if not stem.isdigit() or int(stem) in self.active:
                continue
            raw = b""
            try:
                raw = read_raw(path)
                request: RunRequest | None = parse_request(path, raw)
                error = token = ""
            except RequestError as err:   # read once: the reason and, if any, its token
                request, error, token = None, str(err), _token_in(raw)
            try:
                path.unlink()   # taken: whoever unlinks first (the worker withdraws so)
            except FileNotFoundError:
                continue
            if request is None:
                log.warning("refused request %s: %s", path.name, error)
                self._refuse(int(stem), token, error)
                continue
            thread = threading.Thread(target=self.run, args=(request,),
                                      name=f"rollout-{request.rollout}")
            self.active[request.rollout] = thread
            thread.start()
            taken.append(request.rollout)
        return taken

    def _refuse(self, rollout: int, token: str, error: str) -> None:
        """Tell the worker why, when the request still names its hand-over (token)."""
        if token:
            write_json(self._fresh_run_dir(rollout) / RESULT,
                       {"token": token, "error": f"refused: {error}"}, 0o640, self.gid)

    def stop(self, timeout: float = 50) -> None:
        """Cancel the running rollouts and wait for them to record it."""
        self.stopping.set()
        for thread in list(self.active.values()):
            thread.join(timeout)

    def _fresh_run_dir(self, rollout: int) -> Path:
        run_dir = self.spool.run(rollout)
        shutil.rmtree(run_dir, ignore_errors=True)   # an older rollout of the same id
        run_dir.mkdir(mode=0o750)
        os.chown(run_dir, 0, self.gid)
        return run_dir

    def run(self, request: RunRequest) -> None:
        run_dir = self._fresh_run_dir(request.rollout)
        write_json(run_dir / STARTED, {"token": request.token, "pid": os.getpid()},
                   0o640, self.gid)
        fd = os.open(run_dir / EVENTS, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o640)
        os.fchown(fd, -1, self.gid)
        try:
            with os.fdopen(fd, "w") as events:
                outcome = self._outcome(request, events)
        except Exception as err:   # whatever broke, the worker must hear it
            log.exception("rollout #%s", request.rollout)
            outcome = {"error": f"the root runner failed: {err}"}
        write_json(run_dir / RESULT, {"token": request.token, **outcome}, 0o640, self.gid)
        self.spool.cancel(request.rollout).unlink(missing_ok=True)
        log.info("rollout #%s (%s on %s): %s", request.rollout, request.playbook,
                 request.inventory, outcome.get("error") or outcome["result"]["status"])
        self._rotate()

    def _outcome(self, request: RunRequest, events: IO[str]) -> dict[str, Any]:
        try:
            cfg = self.load_config()
        except ConfigError as err:
            return {"error": str(err)}
        inventory = cfg.inventory(request.inventory)
        if cfg.project is None or inventory is None:
            return {"error": f"no inventory {request.inventory!r} in {cfg.path}"}
        if not (cfg.project / "playbooks").is_dir():
            return {"error": f"{cfg.path}: project {cfg.project} has no playbooks/ directory"}
        # The commit that runs, read by root: the portal's sandbox may not see the checkout.
        commit = git_head(cfg.project) or ""

        def on_event(event: dict[str, Any]) -> None:
            events.write(json.dumps(event, default=str) + "\n")
            events.flush()

        cancel_file = self.spool.cancel(request.rollout)
        from sitevis.inventory import InventoryError
        try:
            result = self.run_playbook(
                cfg.project, f"{request.playbook}.yml", inventory=str(inventory),
                limit=request.limit or None, tags=request.tags or None, check=request.check,
                on_event=on_event,
                cancel=lambda: self.stopping.is_set() or os.path.lexists(cancel_file))
        except InventoryError as err:
            return {"error": str(err)}
        return {"result": json.loads(result.to_json()), "commit": commit,
                "stopped": self.stopping.is_set()}

    def _rotate(self) -> None:
        runs = sorted((p for p in self.spool.runs.iterdir() if p.name.isdigit()),
                      key=lambda p: p.stat().st_mtime)
        for old in runs[:-KEEP_RUNS]:
            if int(old.name) not in self.active:
                shutil.rmtree(old, ignore_errors=True)
