"""Attach the XDP variant of the program to interfaces (ingress only).

An interface holds one XDP program: we never replace a foreign one or a live sitevis
peer's, and only ever remove a sitevis program whose instance is gone.
"""

from __future__ import annotations

import errno
import os
from contextlib import suppress

from sitevis_collector.errors import (
    ClaimedByPeerError,
    InterfaceGoneError,
    KernelError,
    NoPrivilegesError,
    UnsupportedError,
)
from sitevis_collector.hooks import instances
from sitevis_collector.hooks.base import Found, HookSet
from sitevis_collector.hooks.rtnetlink import (
    XDP_FLAGS_REPLACE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
    XdpSetter,
)
from sitevis_collector.kernel.bpfsys import prog_fd_by_id, prog_name
from sitevis_collector.kernel.program import FLOW_PROGRAM_NAMES, FlowProgram
from sitevis_collector.records import INGRESS


class ForeignProgramError(KernelError):
    """Someone else's XDP program is on the interface: never touched."""


class XdpHooks(HookSet):
    """Our XDP program on interfaces of one network namespace (None = current)."""

    def __init__(self, program: FlowProgram, netns: str | None = None) -> None:
        if program.hook != "xdp":
            raise KernelError("XdpHooks needs a program compiled for the xdp hook")
        super().__init__(program.prog_ids)
        from pyroute2 import IPRoute, NetNS

        self.program = program
        self._ipr = NetNS(netns) if netns else IPRoute()
        self._setter = XdpSetter(netns)

    def attached_prog_id(self, ifindex: int) -> int:
        try:
            link = self._ipr.get_links(ifindex)[0]
        except Exception as exc:
            raise InterfaceGoneError(f"interface {ifindex} vanished") from exc
        xdp = link.get_attr("IFLA_XDP")
        return (xdp.get_attr("IFLA_XDP_PROG_ID") or 0) if xdp else 0

    def _set(self, ifindex: int, fd: int, what: str, expected_id: int = 0) -> None:
        """Attach fd (-1: remove) only if the program attached now is expected_id (0:
        none); the kernel checks this atomically, so a program someone else attached
        since we looked is never replaced or removed."""
        expected_fd = prog_fd_by_id(expected_id) if expected_id else None
        if expected_id and expected_fd is None:
            raise ForeignProgramError(f"the XDP program on interface {ifindex} changed "
                                      f"while {what}; leaving it alone")
        flags = XDP_FLAGS_REPLACE if expected_id else XDP_FLAGS_UPDATE_IF_NOEXIST
        try:
            self._setter.set(ifindex, fd, flags, expected_fd)
        except OSError as exc:
            code = exc.errno
            if code in (errno.EBUSY, errno.EEXIST):
                raise ForeignProgramError(f"interface {ifindex} got another XDP program "
                                          f"while {what}; leaving it alone") from exc
            if code in (errno.EPERM, errno.EACCES):
                raise NoPrivilegesError(f"{what} on ifindex {ifindex} needs CAP_NET_ADMIN"
                                        ) from exc
            if code == errno.ENODEV:
                raise InterfaceGoneError(f"interface {ifindex} vanished while {what}") from exc
            if code in (errno.EOPNOTSUPP, errno.EINVAL):
                raise UnsupportedError(f"interface {ifindex} does not support XDP ({exc})"
                                       ) from exc
            raise KernelError(f"{what} on ifindex {ifindex} failed: {exc}") from exc
        finally:
            if expected_fd is not None:
                os.close(expected_fd)

    @staticmethod
    def _sitevis(prog_id: int) -> bool:
        return bool(prog_id) and prog_name(prog_id) in FLOW_PROGRAM_NAMES

    def found(self, ifindex: int) -> list[Found]:
        current = self.attached_prog_id(ifindex)
        return [Found(INGRESS, current)] if self._sitevis(current) else []

    def _remove(self, ifindex: int, found: Found) -> bool:
        try:
            self._set(ifindex, -1, "removing a stale XDP program", found.prog_id)
        except ForeignProgramError:  # replaced meanwhile: not the one we meant
            return False
        return True

    def attach(self, ifindex: int, directions: tuple[str, ...] = (INGRESS,)) -> None:
        current = self.attached_prog_id(ifindex)
        if current and not self._sitevis(current):
            name = prog_name(current) or current
            raise ForeignProgramError(f"interface {ifindex} already has a foreign XDP "
                                      f"program ({name}); not replacing it")
        peer = instances.claims().get(current) if current not in self.own_ids else None
        if current and peer is not None:
            raise ClaimedByPeerError(f"interface {ifindex} carries the XDP program of "
                                     f"{peer.describe()}")
        self._set(ifindex, self.program.function_fd(INGRESS), "attaching XDP", current)
        self.attached[ifindex] = (INGRESS,)

    def detach(self, ifindex: int) -> None:
        self.attached.pop(ifindex, None)
        current = self.attached_prog_id(ifindex)
        if current in self.own_ids:
            with suppress(ForeignProgramError):  # replaced by someone else: theirs now
                self._set(ifindex, -1, "detaching XDP", current)

    def close(self) -> None:
        self._setter.close()
        self._ipr.close()
