"""Attach the program to TC clsact ingress/egress, coexisting with anyone else's filters.

A sitevis filter is recognised by (priority, handle, name prefix) together, so a foreign
filter is never touched even if it happens to share one of them. Its name also carries
the id of the program it runs ("sitevis_ingress.prog42"): that is how an instance tells
its own filters from a live peer's and from those of an instance that is gone.
"""

from __future__ import annotations

import errno
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
from sitevis_collector.hooks.dumps import dump_retrying
from sitevis_collector.kernel import bpfsys
from sitevis_collector.kernel.program import FlowProgram
from sitevis_collector.records import EGRESS, INGRESS

# Low priority number: we run before most filters, so a packet another filter
# drops or redirects at ingress is still seen. Handle and name mark it as ours.
TC_PRIORITY = 3
TC_HANDLE = 0x5156  # "SV"
NAME_PREFIX = "sitevis"
PARENTS = {INGRESS: 0xFFFFFFF2, EGRESS: 0xFFFFFFF3}
_CLSACT_HANDLE = 0xFFFF0000
_PROG_MARK = ".prog"


def filter_name(direction: str, prog_id: int) -> str:
    return f"{NAME_PREFIX}_{direction}{_PROG_MARK}{prog_id}"


def prog_id_in(name: str) -> int:
    """The program id a filter name carries; 0 for a name without one."""
    _, mark, digits = name.rpartition(_PROG_MARK)
    return int(digits) if mark and digits.isdigit() else 0


def _ipr(netns: str | None):
    from pyroute2 import IPRoute, NetNS

    return NetNS(netns) if netns else IPRoute()


def _netlink_error(exc: Exception, ifindex: int, what: str) -> KernelError:
    code = getattr(exc, "code", None)
    if code in (errno.EPERM, errno.EACCES):
        return NoPrivilegesError(f"{what} on ifindex {ifindex} needs CAP_NET_ADMIN")
    if code in (errno.ENODEV, errno.ENOENT) and what != "deleting a filter":
        return InterfaceGoneError(f"interface {ifindex} vanished while {what}")
    if code in (errno.EOPNOTSUPP, errno.ENOTSUP):
        return UnsupportedError(f"the kernel lacks clsact/cls_bpf ({what} on ifindex {ifindex})")
    return KernelError(f"{what} on ifindex {ifindex} failed: {exc}")


class TcHooks(HookSet):
    """Our filters on the clsact hooks of interfaces in one network namespace.

    netns: a named namespace (tests); None = the current one.
    """

    def __init__(self, program: FlowProgram, netns: str | None = None) -> None:
        if program.hook != "tc":
            raise KernelError("TcHooks needs a program compiled for the tc hook")
        super().__init__(program.prog_ids)
        self.program = program
        self._ipr = _ipr(netns)
        self._created_qdisc: set[int] = set()

    # --- queries -------------------------------------------------------------

    def _filters(self, ifindex: int, direction: str) -> list:
        try:
            return dump_retrying(lambda: self._ipr.get_filters(index=ifindex,
                                                               parent=PARENTS[direction]))
        except Exception as exc:
            if getattr(exc, "code", None) == errno.EINVAL:
                return []  # no clsact qdisc: no filters
            raise _netlink_error(exc, ifindex, "listing filters") from exc

    @staticmethod
    def _sitevis_name(msg) -> str | None:
        """The name of a sitevis filter (ours or another instance's), else None."""
        if msg.get_attr("TCA_KIND") != "bpf" or msg["handle"] != TC_HANDLE:
            return None
        if (msg["info"] >> 16) != TC_PRIORITY:
            return None
        options = msg.get_attr("TCA_OPTIONS")
        name = options.get_attr("TCA_BPF_NAME") if options else None
        return name if name and name.startswith(NAME_PREFIX) else None

    @staticmethod
    def _is_filter(msg) -> bool:
        # A dump also lists one header entry per priority (no handle): skip those.
        return msg["handle"] != 0

    def has_clsact(self, ifindex: int) -> bool:
        qdiscs = dump_retrying(lambda: self._ipr.get_qdiscs(index=ifindex))
        return any(q.get_attr("TCA_KIND") == "clsact" for q in qdiscs)

    def found(self, ifindex: int) -> list[Found]:
        return [Found(d, prog_id_in(name)) for d in (INGRESS, EGRESS)
                for m in self._filters(ifindex, d)
                if (name := self._sitevis_name(m)) is not None]

    def _remove(self, ifindex: int, found: Found) -> bool:
        removed = self._delete(ifindex, found.direction)
        # A collector killed before it could detach leaves the clsact qdisc it added. Once
        # its filters are gone and nothing else filters there, the qdisc is ours to
        # remove when we go, as if we had added it.
        if removed and not self._filters_left(ifindex):
            self._created_qdisc.add(ifindex)
        return removed

    def _filters_left(self, ifindex: int) -> bool:
        return any(self._is_filter(m) for d in (INGRESS, EGRESS)
                   for m in self._filters(ifindex, d))

    def release_empty_qdiscs(self) -> int:
        """Remove the clsact qdiscs we added or took over that no filter uses any more
        (cleanup, which attaches nothing, calls it at the end). Returns how many."""
        released = 0
        for ifindex in list(self._created_qdisc):
            if ifindex in self.attached:
                continue
            self._created_qdisc.discard(ifindex)
            with suppress(Exception):  # interface gone: its qdisc went with it
                if not self._filters_left(ifindex):
                    self._ipr.tc("del", "clsact", ifindex)
                    released += 1
        return released

    # --- changes -------------------------------------------------------------

    def attach(self, ifindex: int, directions: tuple[str, ...] = (INGRESS, EGRESS)) -> None:
        """Add our filter on each direction (replacing a stale one of ours)."""
        if not self.has_clsact(ifindex):
            try:
                self._ipr.tc("add", "clsact", ifindex)
                self._created_qdisc.add(ifindex)
            except Exception as exc:
                if getattr(exc, "code", None) != errno.EEXIST:  # raced with someone
                    raise _netlink_error(exc, ifindex, "adding the clsact qdisc") from exc
        for direction in directions:
            self._refuse_replacing(ifindex, direction)
            fd = self.program.function_fd(direction)
            try:
                self._ipr.tc("replace-filter", "bpf", ifindex, TC_HANDLE, fd=fd,
                             name=filter_name(direction, bpfsys.obj_id(fd)),
                             parent=PARENTS[direction],
                             prio=TC_PRIORITY, classid=1, direct_action=True)
            except Exception as exc:
                raise _netlink_error(exc, ifindex, f"adding the {direction} filter") from exc
        self.attached[ifindex] = tuple(directions)

    def _refuse_replacing(self, ifindex: int, direction: str) -> None:
        """Our priority and handle hold one filter: replacing it must never remove a
        foreign filter or a live peer's (one of a gone instance is fair game)."""
        for m in self._filters(ifindex, direction):
            if m["handle"] != TC_HANDLE or (m["info"] >> 16) != TC_PRIORITY:
                continue
            name = self._sitevis_name(m)
            if name is None:
                raise KernelError(f"a foreign TC filter on ifindex {ifindex} {direction} "
                                  f"uses our priority {TC_PRIORITY} and handle {TC_HANDLE:#x}")
            prog = prog_id_in(name)
            peer = instances.claims().get(prog) if prog not in self.own_ids else None
            if peer is not None:
                raise ClaimedByPeerError(f"ifindex {ifindex} {direction} carries the filter "
                                         f"of {peer.describe()}")

    def _delete(self, ifindex: int, direction: str) -> bool:
        try:
            self._ipr.tc("del-filter", "bpf", ifindex, TC_HANDLE,
                         parent=PARENTS[direction], prio=TC_PRIORITY)
        except Exception as exc:
            if getattr(exc, "code", None) in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                return False  # already gone (or the interface is)
            raise _netlink_error(exc, ifindex, "deleting a filter") from exc
        return True

    def detach(self, ifindex: int) -> None:
        """Remove our filters; remove clsact only if we created it and it is now empty."""
        for direction in self.own_directions(ifindex):
            self._delete(ifindex, direction)
        self.attached.pop(ifindex, None)
        if ifindex in self._created_qdisc:
            self._created_qdisc.discard(ifindex)
            with suppress(Exception):  # interface gone: its qdisc went with it
                if not self._filters_left(ifindex):
                    self._ipr.tc("del", "clsact", ifindex)

    def close(self) -> None:
        self._ipr.close()
