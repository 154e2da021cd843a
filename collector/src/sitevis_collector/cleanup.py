"""Find and remove sitevis programs on this namespace's interfaces (clsact filters, tcx
links, XDP) without compiling anything: for uninstall, after a crash, and for `hooks`."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from sitevis_collector.attach import Interface, list_interfaces
from sitevis_collector.kernel import InterfaceGoneError, KernelError
from sitevis_collector.tc import TcHooks
from sitevis_collector.tcx import TcxHooks, tcx_available
from sitevis_collector.xdp import XdpHooks


@dataclass(frozen=True)
class DetachOnly:
    """Stands where hooks expect a loaded program; removal never needs one."""

    hook: str

    def function_fd(self, direction: str) -> int:
        raise KernelError("cleanup cannot attach")


@contextlib.contextmanager
def _every_kind() -> Iterator[dict[str, TcHooks | TcxHooks | XdpHooks]]:
    kinds: dict[str, TcHooks | TcxHooks | XdpHooks] = {
        "clsact": TcHooks(DetachOnly("tc")),  # type: ignore[arg-type]
        "xdp": XdpHooks(DetachOnly("xdp"))}  # type: ignore[arg-type]
    if tcx_available():
        kinds["tcx"] = TcxHooks(DetachOnly("tc"))  # type: ignore[arg-type]
    try:
        yield kinds
    finally:
        for hooks in kinds.values():
            hooks.close()


def _matching(pattern: str) -> list[Interface]:
    return [i for i in list_interfaces() if fnmatch.fnmatchcase(i.ifname, pattern)]


def remove_all(pattern: str = "*") -> dict[str, int]:
    """ifname -> number of our filters/links/programs removed (only interfaces that had
    some), on the interfaces whose name matches the glob."""
    removed: dict[str, int] = {}
    with _every_kind() as kinds:
        for iface in _matching(pattern):
            try:
                # TcxHooks.remove_stale covers clsact filters too.
                tc = kinds.get("tcx", kinds["clsact"])
                count = tc.remove_stale(iface.ifindex) + kinds["xdp"].remove_stale(
                    iface.ifindex)
            except InterfaceGoneError:
                continue
            if count:
                removed[iface.ifname] = count
    return removed


def list_attached(pattern: str = "*") -> list[tuple[str, str, str]]:
    """(ifname, direction, mechanism) for every sitevis program attached, by anyone."""
    found: list[tuple[str, str, str]] = []
    with _every_kind() as kinds:
        for iface in _matching(pattern):
            with contextlib.suppress(InterfaceGoneError):
                for mechanism, hooks in kinds.items():
                    found += [(iface.ifname, d, mechanism)
                              for d in hooks.our_filters(iface.ifindex)]
    return found
