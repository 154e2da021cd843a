"""What every way of attaching the program (tc.py, tcx.py, xdp.py) shares: the set of
interfaces it attached, and letting go of all of them."""

from __future__ import annotations

from contextlib import suppress

from sitevis_collector.kernel import InterfaceGoneError


class HookSet:
    """Subclasses attach/detach one interface; `attached` maps ifindex -> directions."""

    def __init__(self) -> None:
        self.attached: dict[int, tuple[str, ...]] = {}

    def detach(self, ifindex: int) -> None:
        raise NotImplementedError

    def detach_all(self) -> None:
        for ifindex in list(self.attached):
            with suppress(InterfaceGoneError):  # gone with its interface already
                self.detach(ifindex)
