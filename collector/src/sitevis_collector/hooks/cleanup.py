"""Find and remove sitevis programs on this namespace's interfaces (clsact filters, tcx
links, XDP) without compiling anything: for uninstall, after a crash, and for `hooks`.

Programs of a running collector are left alone unless forced (instances.py)."""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass

from sitevis_collector.errors import InterfaceGoneError, KernelError
from sitevis_collector.hooks import instances
from sitevis_collector.hooks.clsact import TcHooks
from sitevis_collector.hooks.interfaces import Interface, list_interfaces
from sitevis_collector.hooks.tcx import TcxHooks, tcx_available
from sitevis_collector.hooks.xdp import XdpHooks


@dataclass(frozen=True)
class DetachOnly:
    """Stands where hooks expect a loaded program; removal never needs one."""

    hook: str
    prog_ids: frozenset[int] = frozenset()  # owns nothing: every program is someone's

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


def remove_all(pattern: str = "*", force: bool = False) -> dict[str, int]:
    """ifname -> number of sitevis filters/links/programs removed (only interfaces that
    had some), on the interfaces whose name matches the glob: those of collectors that
    are gone, and with force those of running ones too."""
    removed: dict[str, int] = {}
    claims = {} if force else instances.claims()
    with _every_kind() as kinds:
        for iface in _matching(pattern):
            try:
                # TcxHooks.remove_stale covers clsact filters too.
                tc = kinds.get("tcx", kinds["clsact"])
                count = (tc.remove_stale(iface.ifindex, claims)
                         + kinds["xdp"].remove_stale(iface.ifindex, claims))
            except InterfaceGoneError:
                continue
            if count:
                removed[iface.ifname] = count
        # clsact qdiscs that only the removed filters used (a killed collector added them).
        tc = kinds.get("tcx", kinds["clsact"])
        tc.release_empty_qdiscs()  # type: ignore[union-attr]
    return removed


def list_attached(pattern: str = "*") -> list[tuple[str, str, str, str]]:
    """(ifname, direction, mechanism, owner) for every sitevis program attached, by
    anyone; owner names the running collector that holds it, or says it has none."""
    found: list[tuple[str, str, str, str]] = []
    claims = instances.claims()
    with _every_kind() as kinds:
        for iface in _matching(pattern):
            with contextlib.suppress(InterfaceGoneError):
                for mechanism, hooks in kinds.items():
                    for f in hooks.found(iface.ifindex):
                        owner = claims.get(f.prog_id)
                        found.append((iface.ifname, f.direction, mechanism,
                                      f"pid {owner.pid}" if owner else "no running collector"))
    return found
