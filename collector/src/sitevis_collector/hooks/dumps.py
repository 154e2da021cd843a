"""Netlink dumps that survive interfaces coming and going.

A dump (every link, every qdisc, every filter) racing link changes is flagged
NLM_F_DUMP_INTR and pyroute2 raises NetlinkDumpInterrupted: the answer may be
inconsistent, so it is taken again. A burst of changes (containers starting while the
collector does) is exactly when a full view matters, so the tries back off up to about
two seconds in all before the error goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from pyroute2.netlink.exceptions import NetlinkDumpInterrupted

T = TypeVar("T")
ATTEMPTS = 12


def dump_retrying(dump: Callable[[], Iterable[T]], attempts: int = ATTEMPTS) -> list[T]:
    """list(dump()), taken again while the kernel says it was interrupted."""
    for attempt in range(attempts):
        try:
            return list(dump())
        except NetlinkDumpInterrupted:
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.5, 0.02 * 2 ** attempt))
    raise AssertionError("unreachable")
