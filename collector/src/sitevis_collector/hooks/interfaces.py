"""Attach manager: keep "attached" equal to "interfaces matching the patterns".

Works in the network namespace of the process. Netlink link events give fast reaction
(a new interface within milliseconds); a periodic full reconcile repairs whatever events
missed (the event socket can overflow under load: ENOBUFS) and retries failed callbacks.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK

from sitevis_collector.hooks.dumps import dump_retrying

log = logging.getLogger(__name__)

Callback = Callable[[int, str], None]


class Interface(NamedTuple):
    ifindex: int
    ifname: str


class Counters(NamedTuple):
    """Kernel interface counters (IFLA_STATS64). Ingress is rx, egress is tx."""

    rx_packets: int
    rx_bytes: int
    tx_packets: int
    tx_bytes: int

    def direction(self, direction: str) -> tuple[int, int]:
        """(packets, bytes) for "ingress" or "egress"."""
        if direction == "ingress":
            return self.rx_packets, self.rx_bytes
        if direction == "egress":
            return self.tx_packets, self.tx_bytes
        raise ValueError(f"direction must be ingress or egress, not {direction!r}")


@dataclass(frozen=True)
class Patterns:
    """Shell-style globs on interface names; an exclude match always wins."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def matches(self, ifname: str) -> bool:
        if any(fnmatch.fnmatchcase(ifname, pat) for pat in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(ifname, pat) for pat in self.include)


def _links(ipr: IPRoute) -> list[Any]:
    return dump_retrying(ipr.get_links)


def list_interfaces(ipr: IPRoute | None = None) -> list[Interface]:
    """Every interface of the current network namespace, by ifindex."""
    with _maybe_ipr(ipr) as sock:
        found = [Interface(m["index"], m.get_attr("IFLA_IFNAME")) for m in _links(sock)]
    return sorted(found)


def read_counters(ipr: IPRoute | None = None,
                  indexes: Iterable[int] | None = None) -> dict[int, Counters]:
    """Kernel rx/tx packet and byte counters keyed by ifindex: of every interface (one
    dump), or of the given ones (one request each: a request, unlike a dump, is never
    interrupted by interfaces coming and going, so it suits a box under heavy churn)."""
    result: dict[int, Counters] = {}
    with _maybe_ipr(ipr) as sock:
        if indexes is None:
            messages = _links(sock)
        else:
            messages = []
            for ifindex in indexes:
                try:
                    messages += sock.get_links(ifindex)
                except NetlinkError:
                    continue  # gone meanwhile
        for msg in messages:
            # IFLA_STATS64 is always sent by current kernels; IFLA_STATS (32 bit) wraps.
            stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS")
            if stats is None:
                continue
            result[msg["index"]] = Counters(
                stats["rx_packets"], stats["rx_bytes"], stats["tx_packets"], stats["tx_bytes"]
            )
    return result


@contextmanager
def _maybe_ipr(ipr: IPRoute | None) -> Iterator[IPRoute]:
    """Use the caller's IPRoute, or open (and close) a private one."""
    if ipr is not None:
        yield ipr
        return
    own = IPRoute()
    try:
        yield own
    finally:
        own.close()


class AttachManager:
    """Calls on_add/on_remove so the attached set follows the matching interfaces.

    Callbacks run on the manager's thread (or on the caller's, for reconcile()), one at a
    time. A callback that raises is logged and retried at the next reconcile.
    """

    def __init__(
        self,
        on_add: Callback,
        on_remove: Callback,
        include: Iterable[str] = ("*",),
        exclude: Iterable[str] = (),
        reconcile_interval: float = 30.0,
        event_rcvbuf: int = 1 << 20,
    ) -> None:
        if reconcile_interval <= 0:
            raise ValueError("reconcile_interval must be positive")
        self.patterns = Patterns(tuple(include), tuple(exclude))
        self.reconcile_interval = reconcile_interval
        self._on_add = on_add
        self._on_remove = on_remove
        self._event_rcvbuf = event_rcvbuf
        self._attached: dict[int, str] = {}
        self._lock = threading.RLock()  # state + callbacks: events vs. reconcile()
        self._query: IPRoute | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._start_error: BaseException | None = None

    # -- public ---------------------------------------------------------------

    @property
    def attached(self) -> dict[int, str]:
        """A copy of ifindex -> ifname of the interfaces on_add succeeded for."""
        with self._lock:
            return dict(self._attached)

    @property
    def running(self) -> bool:
        """True while the event thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def reconcile(self) -> None:
        """Bring the attached set in line with the current interfaces, now."""
        with self._lock:
            current = {i.ifindex: i.ifname for i in list_interfaces(self._query_socket())}
            for ifindex in sorted(self._attached):
                self._settle(ifindex, current.get(ifindex))
            for ifindex, ifname in sorted(current.items()):
                if ifindex not in self._attached:
                    self._settle(ifindex, ifname)

    def start(self) -> None:
        """Subscribe to link events, reconcile once (before returning), then follow
        changes on a thread."""
        if self._thread is not None:
            raise RuntimeError("AttachManager already started")
        self._stopping.clear()
        self._ready.clear()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="sitevis-attach", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            self._join()
            raise error

    def stop(self, timeout: float = 1.0) -> None:
        """Stop following changes (interfaces stay attached; detaching is the loader's)."""
        if self._thread is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if threading.current_thread() is self._thread:
            return  # called from a callback: the loop ends when the callback returns
        self._join(timeout)

    def detach_all(self) -> None:
        """Call on_remove for everything attached (for shutdown); errors are logged."""
        with self._lock:
            for ifindex, ifname in sorted(self._attached.items()):
                self._call(self._on_remove, "remove", ifindex, ifname)
            self._attached.clear()

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self._query is not None:
                self._query.close()
                self._query = None

    def __enter__(self) -> AttachManager:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------

    def _query_socket(self) -> IPRoute:
        if self._query is None:
            self._query = IPRoute()
        return self._query

    def _settle(self, ifindex: int, ifname: str | None) -> None:
        """Make one interface's state right; ifname None means it no longer exists."""
        wanted = ifname is not None and self.patterns.matches(ifname)
        have = self._attached.get(ifindex)
        if have is not None and (not wanted or have != ifname):
            # Gone, renamed out of the patterns, or renamed within them (the loader
            # learns the new name through remove + add; a rename needs the link down).
            ok = self._call(self._on_remove, "remove", ifindex, have)
            if ok or ifname is None:
                # A vanished interface is forgotten even if on_remove failed: the kernel
                # took its filters with it. A live one is retried at the next reconcile.
                del self._attached[ifindex]
            else:
                return
        if wanted and ifindex not in self._attached:
            assert ifname is not None
            if self._call(self._on_add, "add", ifindex, ifname):
                self._attached[ifindex] = ifname

    def _call(self, callback: Callback, what: str, ifindex: int, ifname: str) -> bool:
        try:
            callback(ifindex, ifname)
        except Exception as err:  # one interface's failure must not stop the others
            log.warning("%s interface %s (ifindex %d) failed, retrying at next reconcile: %s",
                        what, ifname, ifindex, err)
            return False
        log.info("%s interface %s (ifindex %d)", what, ifname, ifindex)
        return True

    def _join(self, timeout: float | None = None) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("attach manager thread still busy in a callback after stop()")
            return
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1

    def _open_events(self) -> IPRoute:
        events = IPRoute(rcvbuf=self._event_rcvbuf)
        try:
            events.bind(groups=RTMGRP_LINK)
        except BaseException:
            events.close()
            raise
        return events

    def _run(self) -> None:
        try:
            events: IPRoute | None = self._open_events()
        except BaseException as err:
            self._start_error = err
            self._ready.set()
            return
        # Subscribed before this first reconcile, so no change falls between the two;
        # start() returns once it is done, with the matching interfaces attached.
        next_full = self._next_reconcile(self._safe_reconcile())
        self._ready.set()
        while not self._stopping.is_set():
            try:
                if events is None:
                    events = self._open_events()
                    next_full = 0.0  # events may have been missed while it was closed
                if self._wait_and_apply(events, next_full):
                    next_full = 0.0
            except Exception as err:  # the thread must outlive any netlink surprise
                log.warning("link event socket failed, reopening: %s", err)
                if events is not None:
                    events.close()
                    events = None
                if self._sleep(min(1.0, self.reconcile_interval)):
                    break
            if time.monotonic() >= next_full and not self._stopping.is_set():
                next_full = self._next_reconcile(self._safe_reconcile())
        if events is not None:
            events.close()

    def _wait_and_apply(self, events: IPRoute, next_full: float) -> bool:
        """Handle the events that arrive before next_full; True if some were lost."""
        timeout = max(0.0, next_full - time.monotonic())
        readable, _, _ = select.select([events.fileno(), self._wake_r], [], [], timeout)
        if self._stopping.is_set() or events.fileno() not in readable:
            return False
        try:
            messages = list(events.get())
        except OSError as err:
            if err.errno != errno.ENOBUFS:
                raise
            # The kernel dropped events: only a full dump tells what changed.
            log.warning("link events lost (ENOBUFS); reconciling all interfaces")
            return True
        self._apply(messages)
        return False

    def _sleep(self, seconds: float) -> bool:
        """Wait, waking early for stop(); True if stopping."""
        select.select([self._wake_r], [], [], seconds)
        return self._stopping.is_set()

    def _apply(self, messages: Sequence[Any]) -> None:
        with self._lock:
            for msg in messages:
                event = msg.get("event")
                name = msg.get_attr("IFLA_IFNAME")
                if event == "RTM_NEWLINK" and name is not None:  # None would mean "gone"
                    self._settle(msg["index"], name)
                elif event == "RTM_DELLINK":
                    self._settle(msg["index"], None)

    def _safe_reconcile(self) -> bool:
        """Reconcile; False (logged) if the dump failed, which must not end the thread."""
        try:
            self.reconcile()
        except Exception as err:
            log.warning("reconcile failed, retrying: %s", err)
            with self._lock:
                if self._query is not None:
                    self._query.close()
                    self._query = None
            return False
        return True

    def _next_reconcile(self, succeeded: bool) -> float:
        # After a failure retry soon: events may be missing until a reconcile succeeds.
        delay = self.reconcile_interval if succeeded else min(1.0, self.reconcile_interval)
        return time.monotonic() + delay
