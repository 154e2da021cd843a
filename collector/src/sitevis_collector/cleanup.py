"""Remove every sitevis filter/XDP program from this namespace's interfaces (uninstall,
or after a crash), without compiling anything."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sitevis_collector.attach import list_interfaces
from sitevis_collector.kernel import InterfaceGoneError, KernelError
from sitevis_collector.tc import TcHooks
from sitevis_collector.xdp import XdpHooks


@dataclass(frozen=True)
class DetachOnly:
    """Stands where hooks expect a loaded program; removal never needs one."""

    hook: str

    def function_fd(self, direction: str) -> int:
        raise KernelError("cleanup cannot attach")


def remove_all(pattern: str = "*") -> dict[str, int]:
    """ifname -> number of our filters/programs removed (only interfaces that had some),
    on the interfaces whose name matches the glob."""
    removed: dict[str, int] = {}
    tc, xdp = TcHooks(DetachOnly("tc")), XdpHooks(DetachOnly("xdp"))  # type: ignore[arg-type]
    try:
        for iface in list_interfaces():
            if not fnmatch.fnmatchcase(iface.ifname, pattern):
                continue
            try:
                count = tc.remove_stale(iface.ifindex) + xdp.remove_stale(iface.ifindex)
            except InterfaceGoneError:
                continue
            if count:
                removed[iface.ifname] = count
    finally:
        tc.close()
        xdp.close()
    return removed
