"""What every way of attaching the program (tc.py, tcx.py, xdp.py) shares: the set of
interfaces it attached, telling its own programs from other instances', and removing
the programs of instances that are gone (never a live one's: see instances.py)."""

from __future__ import annotations

from contextlib import suppress
from typing import NamedTuple

from sitevis_collector.errors import InterfaceGoneError
from sitevis_collector.hooks import instances


class Found(NamedTuple):
    """A sitevis flow program on one hook of an interface."""

    direction: str
    prog_id: int     # 0: unknown (a clsact filter written before filters carried it)
    link_id: int = 0  # tcx links only


class HookSet:
    """Subclasses attach/detach one interface and list what is on its hooks;
    `attached` maps ifindex -> directions."""

    def __init__(self, own_ids: frozenset[int] = frozenset()) -> None:
        self.attached: dict[int, tuple[str, ...]] = {}
        self.own_ids = own_ids  # this instance's programs (empty: cleanup, hooks)

    def attach(self, ifindex: int, directions: tuple[str, ...]) -> None:
        """Put this instance's program on the interface's hooks (idempotent)."""
        raise NotImplementedError

    def detach(self, ifindex: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of sockets (attached programs stay: detach_all takes them off)."""
        raise NotImplementedError

    def found(self, ifindex: int) -> list[Found]:
        """Every sitevis flow program on this kind of hook of the interface."""
        raise NotImplementedError

    def _remove(self, ifindex: int, found: Found) -> bool:
        """Take one found program off its hook; False if it was gone already."""
        raise NotImplementedError

    def own_directions(self, ifindex: int) -> list[str]:
        """Directions on which one of this instance's programs is attached."""
        return list(dict.fromkeys(f.direction for f in self.found(ifindex)
                                  if f.prog_id in self.own_ids))

    def remove_stale(self, ifindex: int, claims: dict | None = None) -> int:
        """Remove the sitevis programs whose instance is gone (not ours, not a live
        instance's); claims = {} removes every one but ours. Returns how many."""
        live = instances.claims() if claims is None else claims
        return sum(self._remove(ifindex, f) for f in self.found(ifindex)
                   if f.prog_id not in self.own_ids and f.prog_id not in live)

    def detach_all(self) -> None:
        for ifindex in list(self.attached):
            with suppress(InterfaceGoneError):  # gone with its interface already
                self.detach(ifindex)
