"""The collector's errors about the kernel and its hooks, in a module of their own so
any layer can raise them without importing another."""

from __future__ import annotations


class KernelError(Exception):
    """A failure of the kernel side, with a one-line message for the user."""


class NoPrivilegesError(KernelError):
    pass


class CompileError(KernelError):
    pass


class UnsupportedError(KernelError):
    """The running kernel lacks something the program needs."""


class ClaimedByPeerError(KernelError):
    """A live sitevis-collector instance traces the interface: never taken from it."""


class InterfaceGoneError(KernelError):
    """The interface vanished while we attached to or detached from it."""
