"""The worker's side of the root runner (rootrun.py): hand a rollout over through the
spool, follow its events as they are written, ask it to cancel, take its result. A worker
that stops leaves the run to the runner (detaches); the next worker follows it on (the
events file holds every event, the hand-over token is derived from the rollout)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any

from sitevis.portal.rollouts.request import RunRequest
from sitevis.portal.rollouts.spool import EVENTS, RESULT, STARTED, Spool, read_json, write_json

if TYPE_CHECKING:
    from sitevis.runner import RunResult

PICKUP_S = 30.0      # the runner polls every 0.5 s: 30 s without it means it is not running
POLL_S = 0.2
ALIVE_EVERY_S = 2.0


class HandoffError(Exception):
    """Why the root runner did not run the rollout to its end (one line)."""


class Detached(Exception):
    """The worker stopped while the root runner runs (or has yet to take) the rollout:
    it goes on there, and the next worker follows it (resumable)."""


@dataclass(frozen=True)
class Handed:
    """What the root runner reports at the end of a rollout."""

    result: RunResult
    commit: str            # the project's commit it ran, read by root ("" if none)
    runner_stopped: bool   # it was cancelled because the runner itself was stopping


def _withdraw(spool: Spool, rollout: int) -> bool:
    """Take the request back; False when the runner took it first."""
    try:
        spool.request(rollout).unlink()
    except FileNotFoundError:
        return False
    return True


def alive(pid: int) -> bool:
    """Whether a process of this machine is there (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True   # another user's (root's), and there
    return True


class Follower:
    """Reads the run's events.jsonl as it grows, whole lines only."""

    def __init__(self, path: os.PathLike[str], on_event: Callable[[dict[str, Any]], Any]):
        self.path = path
        self.on_event = on_event
        self.file: IO[bytes] | None = None
        self.rest = b""

    def read(self) -> None:
        if self.file is None:
            try:
                self.file = open(self.path, "rb")  # noqa: SIM115 - kept open to tail it
            except FileNotFoundError:
                return
        *lines, self.rest = (self.rest + self.file.read()).split(b"\n")
        for line in lines:
            if line.strip():
                self.on_event(json.loads(line))

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _wait_taken(spool: Spool, request: RunRequest, cancel: Callable[[], bool],
                detach: Callable[[], bool]) -> dict[str, Any] | None:
    """runner.json of this hand-over (or result.json of a refusal); None: withdrawn on
    cancel before the runner took it."""
    run_dir = spool.run(request.rollout)
    deadline = time.monotonic() + PICKUP_S
    while True:
        found = read_json(run_dir / STARTED, request.token) or read_json(
            run_dir / RESULT, request.token)
        if found:
            return found
        if detach():
            raise Detached("left waiting for the root runner")
        if cancel() and _withdraw(spool, request.rollout):
            return None
        if time.monotonic() > deadline:
            if _withdraw(spool, request.rollout):
                raise HandoffError(
                    f"the root runner did not take the rollout within {PICKUP_S:g} s: is "
                    f"sitevis-portal-runner running? (spool {spool.root})")
            if time.monotonic() > deadline + PICKUP_S:
                raise HandoffError("the root runner took the rollout but never started it")
        time.sleep(POLL_S)


def hand_over(spool: Spool, request: RunRequest) -> None:
    """Drop the request for the runner (a cancel file of an older hand-over goes)."""
    spool.cancel(request.rollout).unlink(missing_ok=True)
    write_json(spool.request(request.rollout), asdict(request), 0o640)


def resumable(spool: Spool, request: RunRequest) -> bool:
    """Whether this hand-over is still in the spool: waiting, taken or ended."""
    run_dir = spool.run(request.rollout)
    return spool.request(request.rollout).exists() or any(
        read_json(run_dir / name, request.token) for name in (STARTED, RESULT))


def follow(spool: Spool, request: RunRequest, on_event: Callable[[dict[str, Any]], Any],
           cancel: Callable[[], bool], detach: Callable[[], bool] = lambda: False,
           ) -> Handed | None:
    """What the root runner reports of a handed-over request; None when it was cancelled
    before the runner took it. Every event reaches on_event, in order, while the run
    goes on; raises Detached when `detach()` turns true first. Also how a later worker
    follows a detached run on (from its first event: on_event must take one twice)."""
    from sitevis.runner import RunResult

    started = _wait_taken(spool, request, cancel, detach)
    if started is None:
        return None
    run_dir = spool.run(request.rollout)
    follower = Follower(run_dir / EVENTS, on_event)
    asked_cancel = False
    checked_alive = time.monotonic()
    try:
        while (ended := read_json(run_dir / RESULT, request.token)) is None:
            follower.read()
            if detach():
                raise Detached(f"left to the root runner (pid {started['pid']})")
            if not asked_cancel and cancel():
                spool.cancel(request.rollout).touch()
                asked_cancel = True
            if time.monotonic() - checked_alive > ALIVE_EVERY_S:
                checked_alive = time.monotonic()
                if not alive(int(started["pid"])) and not (run_dir / RESULT).exists():
                    raise HandoffError(f"the root runner (pid {started['pid']}) stopped "
                                       "before the rollout ended")
            time.sleep(POLL_S)
        follower.read()   # the last lines, written before result.json
    finally:
        follower.close()
    if "error" in ended:
        raise HandoffError(str(ended["error"]))
    return Handed(RunResult.from_json(ended["result"]), str(ended.get("commit") or ""),
                  bool(ended.get("stopped")))
