"""Run one call inside a named network namespace without moving the process.

Interface indexes, netlink sockets and tcx links all belong to the namespace of the
thread that makes them: the call runs on a short-lived thread that joins the namespace,
so no other thread of the collector ever moves.
"""

from __future__ import annotations

import ctypes as ct
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"


def call_in_netns(netns: str | None, call: Callable[[], T]) -> T:
    """call() in the named namespace (None: here, on this thread); its result or error."""
    if netns is None:
        return call()
    outcome: list[T | BaseException] = []

    def inside() -> None:
        try:
            libc = ct.CDLL(None, use_errno=True)
            with open(os.path.join(NETNS_DIR, netns), "rb") as ns:
                if libc.setns(ns.fileno(), _CLONE_NEWNET) != 0:
                    err = ct.get_errno()
                    raise OSError(err, f"entering netns {netns}: {os.strerror(err)}")
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=inside, name=f"netns-{netns}")
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
