"""Which sitevis-collector instances run on this host, and whose programs are whose.

Two collectors must never blind each other: an instance removes a sitevis program only
when the instance that loaded it is gone. Every instance that attaches (run, once, top)
registers in RUN_DIR: a file with its pid, config, network namespace, interface patterns
and the ids of the programs it loaded, on which it holds an exclusive lock for as long
as it lives. The kernel drops the lock when the process ends, however it ends (SIGKILL
too), so a registration whose lock can be taken belongs to an instance that is gone.
The lock is a POSIX record lock (lockf), not flock: a child forked meanwhile (pyroute2's
netns helper) does not inherit it and cannot keep a dead instance alive. Such a lock
goes when its process closes any descriptor of the file, so an instance never opens its
own registrations again: it knows them (_mine).

Ownership is by program id: a tcx link or XDP attachment reports it, and a clsact
filter carries it in its name (hooks/tc.py), because pyroute2 cannot read TCA_BPF_ID.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sitevis_collector.errors import KernelError
from sitevis_collector.hooks.interfaces import Patterns

RUN_DIR = Path(os.environ.get("SITEVIS_COLLECTOR_RUN_DIR", "/run/sitevis-collector"))
_serial = itertools.count(1)  # several agents in one process (tests) register apart
_mine: dict[Path, Instance] = {}  # this process's open registrations


class RegistryError(KernelError):
    """The run directory cannot hold this instance's registration."""


def netns_id() -> str:
    """This process's network namespace, as the kernel names it (net:[4026531840])."""
    return os.readlink("/proc/self/ns/net")


@dataclass(frozen=True)
class Instance:
    pid: int
    config: str
    netns: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    prog_ids: tuple[int, ...]
    started: float
    serial: int = 0

    def describe(self) -> str:
        return f"sitevis-collector pid {self.pid} (config {self.config})"

    def traces(self, ifname: str, netns: str) -> bool:
        """Whether this instance attaches to an interface of that name in that netns."""
        return netns == self.netns and Patterns(self.include, self.exclude).matches(ifname)

    def older_than(self, other: Instance) -> bool:
        return (self.started, self.pid, self.serial) < (other.started, other.pid,
                                                       other.serial)


class Registration:
    """This instance's entry in the registry, locked while the process lives."""

    def __init__(self, instance: Instance, run_dir: Path = RUN_DIR) -> None:
        self.instance = instance
        self.path = run_dir / f"{instance.pid}-{instance.serial}.json"
        try:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Locked before it is visible under its name: a reader never sees it unlocked.
            tmp = run_dir / f".{self.path.name}.tmp"
            self._fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC,
                               0o600)
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
            os.write(self._fd, json.dumps(asdict(instance)).encode())
            os.rename(tmp, self.path)
            _mine[self.path] = instance
        except OSError as exc:
            raise RegistryError(f"cannot register this collector in {run_dir}: "
                                f"{exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._fd < 0:
            return
        _mine.pop(self.path, None)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = -1


def register(config: str, include: tuple[str, ...], exclude: tuple[str, ...],
             prog_ids: frozenset[int], run_dir: Path = RUN_DIR) -> Registration:
    instance = Instance(pid=os.getpid(), config=config, netns=netns_id(),
                        include=tuple(include), exclude=tuple(exclude),
                        prog_ids=tuple(sorted(prog_ids)), started=time.time(),
                        serial=next(_serial))
    return Registration(instance, run_dir)


def live_instances(run_dir: Path = RUN_DIR) -> list[Instance]:
    """Every registered instance still alive; registrations of gone ones are removed."""
    found = [inst for path, inst in _mine.items() if path.parent == run_dir]
    try:
        paths = sorted(run_dir.glob("*.json"))
    except OSError:
        return found
    for path in paths:
        if path.name.startswith(f"{os.getpid()}-"):
            continue  # ours (in _mine, or closed); opening it would drop our lock
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # removed meanwhile
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:  # its owner holds the lock: alive
                found.append(_read(fd))
                continue
            with contextlib.suppress(OSError):
                path.unlink()  # the owner is gone: so is its claim
        finally:
            os.close(fd)
    return found


def _read(fd: int) -> Instance:
    raw = json.loads(os.pread(fd, 1 << 16, 0))
    for name in ("include", "exclude", "prog_ids"):
        raw[name] = tuple(raw[name])
    return Instance(**raw)


def claims(run_dir: Path = RUN_DIR) -> dict[int, Instance]:
    """Program id -> the live instance that loaded it."""
    return {prog: inst for inst in live_instances(run_dir) for prog in inst.prog_ids}
