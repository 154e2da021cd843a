"""Attach the XDP variant of the program to interfaces (ingress only).

An interface holds one XDP program: we never replace a foreign one, and only ever
remove a program whose name says it is ours.
"""

from __future__ import annotations

import errno
from contextlib import suppress

from sitevis_collector.bpfsys import prog_name
from sitevis_collector.kernel import (
    FlowProgram,
    InterfaceGoneError,
    KernelError,
    NoPrivilegesError,
    UnsupportedError,
)
from sitevis_collector.records import INGRESS

NAME_PREFIX = "sitevis"


class XdpHooks:
    """Our XDP program on interfaces of one network namespace (None = current)."""

    def __init__(self, program: FlowProgram, netns: str | None = None) -> None:
        if program.hook != "xdp":
            raise KernelError("XdpHooks needs a program compiled for the xdp hook")
        from pyroute2 import IPRoute, NetNS

        self.program = program
        self._ipr = NetNS(netns) if netns else IPRoute()
        self.attached: dict[int, tuple[str, ...]] = {}

    def attached_prog_id(self, ifindex: int) -> int:
        try:
            link = self._ipr.get_links(ifindex)[0]
        except Exception as exc:
            raise InterfaceGoneError(f"interface {ifindex} vanished") from exc
        xdp = link.get_attr("IFLA_XDP")
        return (xdp.get_attr("IFLA_XDP_PROG_ID") or 0) if xdp else 0

    def _set(self, ifindex: int, fd: int, what: str) -> None:
        try:
            self._ipr.link("set", index=ifindex, xdp_fd=fd)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if code in (errno.EPERM, errno.EACCES):
                raise NoPrivilegesError(f"{what} on ifindex {ifindex} needs CAP_NET_ADMIN"
                                        ) from exc
            if code == errno.ENODEV:
                raise InterfaceGoneError(f"interface {ifindex} vanished while {what}") from exc
            if code in (errno.EOPNOTSUPP, errno.EINVAL):
                raise UnsupportedError(f"interface {ifindex} does not support XDP ({exc})"
                                       ) from exc
            raise KernelError(f"{what} on ifindex {ifindex} failed: {exc}") from exc

    def attach(self, ifindex: int, directions: tuple[str, ...] = (INGRESS,)) -> None:
        current = self.attached_prog_id(ifindex)
        if current:
            name = prog_name(current) or ""
            if not name.startswith(NAME_PREFIX):
                raise KernelError(f"interface {ifindex} already has a foreign XDP program "
                                  f"({name or current}); not replacing it")
        self._set(ifindex, self.program.function_fd(INGRESS), "attaching XDP")
        self.attached[ifindex] = (INGRESS,)

    def detach(self, ifindex: int) -> None:
        self.attached.pop(ifindex, None)
        current = self.attached_prog_id(ifindex)
        if current and (prog_name(current) or "").startswith(NAME_PREFIX):
            self._set(ifindex, -1, "detaching XDP")

    def remove_stale(self, ifindex: int) -> int:
        """Remove an XDP program of ours left by an earlier run; return how many (0/1)."""
        if ifindex in self.attached:
            return 0
        current = self.attached_prog_id(ifindex)
        if current and (prog_name(current) or "").startswith(NAME_PREFIX):
            self._set(ifindex, -1, "removing a stale XDP program")
            return 1
        return 0

    def detach_all(self) -> None:
        for ifindex in list(self.attached):
            with suppress(InterfaceGoneError):
                self.detach(ifindex)

    def close(self) -> None:
        self._ipr.close()
